"""What every task's readers share: the data-column options, and delimited and JSON-lines records
numbered by the file line they start on, so that every error names the file, the line and what was
expected (``DataError``)."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from ..errors import DataError
from ..files import names_a_local_path
from ..training.options import option

# (line, record) of each data row, given the columns every row must have.
RowReader = Callable[[tuple[str, ...]], Iterator[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class Columns:
    """The data columns a user names (``--text-a``, ``--text-b``, ``--label``): they override a
    known layout's columns or describe a generic file. Carried from the command line to every
    reader, ``run.json`` and ``compare``'s cells as this one value."""

    text_a: str | None = option(
        None, help="column of the first text (generic csv/tsv/jsonl, or to override a layout)"
    )
    text_b: str | None = option(None, help="column of the second text, if any")
    label: str | None = option(None, help="column of the label")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def given(self) -> dict[str, str]:
        """The named columns only."""
        return {name: value for name in self.names() if (value := getattr(self, name)) is not None}

    def to_args(self) -> list[str]:
        """The named columns as command-line arguments."""
        return [
            part for name, value in self.given().items() for part in ("--" + name.replace("_", "-"), value)
        ]


def numbered_records(path: Path, reader: Any, what: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each non-blank record of a ``csv.reader``; a malformed
    record raises a DataError naming its line (``what``: "comma-separated", ...)."""
    start = 1  # first physical line of the next record (a quoted CSV field may span lines)
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if any(field.strip() for field in row):
                yield line, row
    except csv.Error as error:
        raise DataError(path, f"malformed {what} row: {error}", line=start) from None


def delimited_rows(path: Path, text: TextIO, container: str) -> tuple[list[str], int, RowReader]:
    """Read the header of a CSV (``container`` "csv") or TSV file; return it, its line number and a
    reader for the data rows, which checks every row against the header: too few fields for the
    columns read, or more fields than the header has, is an error at that row's line.

    CSV is read strictly (an unclosed quote is an error where its field starts, not a field that
    swallows the rest of the file); TSV without quoting, as MSRP, SNLI and GLUE TSVs hold bare
    double quotes inside sentences.
    """
    if container == "csv":
        reader = csv.reader(text, strict=True)
        what = "comma-separated"
    else:
        reader = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
        what = "tab-separated"
    lines = numbered_records(path, reader, what)
    first = next(lines, None)
    if first is None:
        raise DataError(path, "empty file: expected a header line and data rows")
    header_line, header = first[0], [name.strip() for name in first[1]]

    def rows(columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
        index = {name: header.index(name) for name in columns}
        needed = max(index.values()) + 1
        for line, row in lines:
            if len(row) < needed:
                raise DataError(
                    path,
                    f"too few fields: expected at least {needed} {what} fields "
                    f"(up to column {header[needed - 1]!r}), found {len(row)}",
                    line=line,
                )
            if any(field.strip() for field in row[len(header) :]):
                raise DataError(
                    path,
                    f"too many fields: expected {len(header)} {what} fields (the header's), found {len(row)}",
                    line=line,
                )
            yield line, {name: row[i] for name, i in index.items()}

    return header, header_line, rows


def require_columns(path: Path, header: list[str], header_line: int, columns: tuple[str, ...]) -> None:
    """A DataError at the header's line naming the first of ``columns`` the header lacks."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            path, f"missing column {missing[0]!r} (header has: {', '.join(header)})", line=header_line
        )


def jsonl_rows(path: Path, text: TextIO) -> tuple[list[str], int, RowReader]:
    """Read the first record of a JSONL file; return its keys, its line and a reader for all records,
    which checks that every record has the columns read."""

    def numbered() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, raw in enumerate(text, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise DataError(
                    path, f"expected a JSON object on each line, found invalid JSON ({error.msg})", line=line
                ) from None
            if not isinstance(record, dict):
                raise DataError(
                    path, f"expected a JSON object on each line, found {kind_of(record)}", line=line
                )
            yield line, record

    records = numbered()
    first = next(records, None)
    if first is None:
        raise DataError(path, "empty file: expected one JSON object per line")

    def rows(columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
        for line, record in itertools.chain([first], records):
            for name in columns:
                if name not in record:
                    raise DataError(
                        path, f"missing key {name!r} (record has: {', '.join(record)})", line=line
                    )
            yield line, record

    return list(first[1]), first[0], rows


def kind_of(value: object) -> str:
    """A JSON-ish name for the type of ``value``."""
    return "null" if value is None else type(value).__name__


def check_data_file(path: Path) -> None:
    """A DataError unless ``path`` is an existing file."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a directory, expected a data file")


def load_hf_split(name_or_path: str | Path, split: str) -> Any:
    """One split of a HuggingFace dataset (``--dataset``): a ``save_to_disk`` folder, or a Hub name
    (which needs internet); a missing folder, split or data set is a one-line DataError."""
    import datasets  # imported here: it is slow to import and only these readers need it
    from datasets.exceptions import DatasetNotFoundError

    source = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        raise DataError(
            source, "is a file; --dataset takes a save_to_disk folder or a Hub name (files: --train)"
        )
    if not path.exists() and names_a_local_path(source):
        raise DataError(source, "no such dataset folder")
    try:
        if not path.is_dir():
            return datasets.load_dataset(source, split=split)
        loaded = datasets.load_from_disk(source)
    except (FileNotFoundError, ConnectionError, DatasetNotFoundError) as error:
        raise DataError(source, f"cannot load the dataset: {error}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(source, f"no split {split!r} (splits: {', '.join(loaded)})")
        return loaded[split]
    if split != "train":
        raise DataError(
            source, f"holds one dataset without splits, so no split {split!r}; save a DatasetDict"
        )
    return loaded
