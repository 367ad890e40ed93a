"""The training data of an embedding model: pairs with a score (``tasks.pairs.scored_pairs``), or rows
of an anchor, a positive and optionally a negative text, or labelled pairs of which those with one
label are taken as (anchor, positive)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from ..pairs.data import read_pairs
from ..pairs.scored_pairs import ScoredPairs, read_scored
from ..readers import Columns, RowReader, check_data_file, delimited_rows, jsonl_rows

TEXT_COLUMNS = ("anchor", "positive", "negative")


@dataclass
class TextRows:
    """Rows of (anchor, positive[, negative]) texts, for in-batch-negative losses."""

    columns: dict[str, list[str]]
    source: str
    layout: str

    def __len__(self) -> int:
        return len(self.columns["anchor"])


EmbeddingData = ScoredPairs | TextRows


def _records(path: Path) -> tuple[list[str], int, RowReader]:
    """The header, its line and the row reader of a CSV, TSV or JSONL file (by its suffix and first
    character, as ``tasks.pairs`` tells them)."""
    text = io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")
    first = next((line for line in text if line.strip()), "")
    text.seek(0)
    if path.suffix.lower() == ".jsonl" or first.lstrip().startswith("{"):
        return jsonl_rows(path, text)
    return delimited_rows(path, text, "csv" if path.suffix.lower() == ".csv" else "tsv")


def _text_rows(path: Path, header: list[str], rows: RowReader) -> TextRows:
    names = tuple(c for c in TEXT_COLUMNS if c in header)
    columns: dict[str, list[str]] = {name: [] for name in names}
    for line, record in rows(names):
        for name in names:
            value = record[name]
            if not isinstance(value, str) or not value.strip():
                raise DataError(path, f"expected text in {name!r}, found {value!r}", line=line)
            columns[name].append(value.strip())
    if not columns["anchor"]:
        raise DataError(path, "no data rows")
    return TextRows(columns, str(path), "-".join(names))


def read_embedding_data(
    path: str | Path,
    format: str = "auto",
    columns: Columns | None = None,
    label_range: tuple[float, float] | None = None,
    positive_label: str | None = None,
) -> EmbeddingData:
    """A data file for an embedding model: with ``positive_label``, the labelled pairs that have it
    as (anchor, positive) rows; a CSV/TSV/JSONL whose header has ``anchor`` and ``positive`` (and
    ``negative``) as such rows; else pairs with a score (``read_scored``)."""
    path = Path(path)
    check_data_file(path)
    if positive_label is not None:
        pairs = read_pairs(path, "auto" if format == "glue-stsb" else format, columns)
        if pairs.text_b is None:
            raise DataError(path, "--positive-label takes pairs; this file has one text per row")
        kept = [i for i, label in enumerate(pairs.labels) if label == positive_label]
        if not kept:
            labels = ", ".join(sorted(set(pairs.labels)))
            raise DataError(path, f"no pair is labelled {positive_label!r} (labels: {labels})")
        anchor = [pairs.text_a[i] for i in kept]
        positive = [pairs.text_b[i] for i in kept]
        layout = f"{pairs.layout}:{positive_label}"
        return TextRows({"anchor": anchor, "positive": positive}, pairs.source, layout)
    if format in ("auto", "csv", "tsv", "jsonl") and not (columns and columns.given()):
        header, _, rows = _records(path)
        if "anchor" in header and "positive" in header:
            return _text_rows(path, header, rows)
    return read_scored(path, format, columns, label_range)
