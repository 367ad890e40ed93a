"""Readers that turn files of labelled sentence pairs (or single sentences) into one in-memory
structure, for every task that takes pairs (classification, regression).

A *layout* says which columns hold the two texts and the label (SICK, MSRP, MultiNLI, GLUE, ...);
a *container* says how rows are stored (JSON lines, tab- or comma-separated). Any layout can be read
from any container by the same generic reader; ``format="auto"`` picks both from the file itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DataError
from ..readers import Columns, check_data_file, delimited_rows, jsonl_rows, kind_of, load_hf_split

logger = logging.getLogger("attnguide")

FORMATS: tuple[str, ...] = (
    "auto",
    "multinli",
    "snli",
    "mednli",
    "glue-mnli",
    "glue-rte",
    "glue-qnli",
    "glue-mrpc",
    "glue-sst2",
    "sick",
    "msrp",
    "csv",
    "tsv",
    "jsonl",
)

# Label values that mark a row as unlabelled (MultiNLI/SNLI use "-" where annotators disagreed).
_UNLABELLED = ("", "-")

_NLI_ORDER = ("entailment", "neutral", "contradiction")
_BINARY_NLI_ORDER = ("entailment", "not_entailment")


@dataclass(frozen=True)
class _Layout:
    """Which columns hold the texts and the label, and how to recognise the layout from a header."""

    name: str
    text_a: str
    text_b: str | None
    label: str
    identifying: tuple[str, ...]
    label_order: tuple[str, ...] | None = None
    score: str | None = None  # the column of a numeric score, where the data set has one

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The one or two text columns."""
        return (self.text_a,) if self.text_b is None else (self.text_a, self.text_b)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns every row must have."""
        return (*self.text_columns, self.label)


# Most specific first: detection takes the first layout whose identifying columns are all present.
_LAYOUTS: tuple[_Layout, ...] = (
    _Layout(
        "sick",
        "sentence_A",
        "sentence_B",
        "entailment_judgment",
        ("pair_ID", "sentence_A", "sentence_B", "entailment_judgment"),
        ("ENTAILMENT", "NEUTRAL", "CONTRADICTION"),
        score="relatedness_score",
    ),
    _Layout("msrp", "#1 String", "#2 String", "Quality", ("Quality", "#1 String", "#2 String"), ("0", "1")),
    _Layout(
        "glue-mnli",
        "sentence1",
        "sentence2",
        "gold_label",
        ("index", "pairID", "sentence1", "sentence2", "gold_label"),
        _NLI_ORDER,
    ),
    _Layout(
        "glue-stsb",
        "sentence1",
        "sentence2",
        "score",
        ("index", "genre", "sentence1", "sentence2", "score"),
        score="score",
    ),
    _Layout(
        "nli", "sentence1", "sentence2", "gold_label", ("sentence1", "sentence2", "gold_label"), _NLI_ORDER
    ),
    _Layout(
        "glue-rte",
        "sentence1",
        "sentence2",
        "label",
        ("index", "sentence1", "sentence2", "label"),
        _BINARY_NLI_ORDER,
    ),
    _Layout(
        "glue-qnli",
        "question",
        "sentence",
        "label",
        ("index", "question", "sentence", "label"),
        _BINARY_NLI_ORDER,
    ),
    _Layout("glue-sst2", "sentence", None, "label", ("sentence", "label"), ("0", "1")),
)
_LAYOUT_BY_NAME = {layout.name: layout for layout in _LAYOUTS}
# Layouts whose columns identify the data set itself, so that its label set holds for any file
# detected as one; the GLUE RTE, QNLI and SST-2 columns are generic names other data sets use too.
_DISTINCTIVE_LAYOUTS = frozenset({"sick", "msrp", "glue-mnli", "nli"})

# Formats that name a layout; the remaining formats ("auto", "csv", "tsv", "jsonl") detect it.
_FORMAT_LAYOUT = {
    "multinli": "nli",
    "snli": "nli",
    "mednli": "nli",
    "glue-mnli": "glue-mnli",
    "glue-rte": "glue-rte",
    "glue-qnli": "glue-qnli",
    "glue-mrpc": "msrp",
    "glue-sst2": "glue-sst2",
    "sick": "sick",
    "msrp": "msrp",
    "glue-stsb": "glue-stsb",
}
SCORE_FORMATS = ("auto", "sick", "glue-stsb", "csv", "tsv", "jsonl")
"""The layouts of pairs with a numeric score (read with ``scores=True``)."""

# Column sets tried, in order, on HuggingFace datasets when no column names are given.
_HF_LAYOUTS: tuple[_Layout, ...] = tuple(
    _Layout(name, a, b, label, tuple(c for c in (a, b, label) if c is not None))
    for name, a, b, label in (
        ("premise-hypothesis", "premise", "hypothesis", "label"),
        ("sentence-pair", "sentence1", "sentence2", "label"),
        ("nli", "sentence1", "sentence2", "gold_label"),
        ("question-sentence", "question", "sentence", "label"),
        ("single-sentence", "sentence", None, "label"),
    )
)


@dataclass
class PairData:
    """Sentence pairs (or single sentences) with their raw label strings."""

    text_a: list[str]
    text_b: list[str] | None
    labels: list[str]
    source: str
    layout: str
    label_order: tuple[str, ...] | None
    dropped: int = 0
    positions: list[int] = field(default_factory=list)
    by_line: bool = True

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, limit: int) -> PairData:
        """The first ``limit`` examples (all with 0)."""
        if limit == 0 or limit >= len(self):
            return self
        return dataclasses.replace(
            self,
            text_a=self.text_a[:limit],
            text_b=self.text_b[:limit] if self.text_b is not None else None,
            labels=self.labels[:limit],
        )

    def error(self, index: int, message: str) -> DataError:
        """A DataError about example ``index``, naming its file line (``positions``, ``by_line``) or
        its row index in a dataset."""
        if not self.positions:
            return DataError(self.source, message)
        return _located_error(self.source, message, self.positions[index], self.by_line)


def _located_error(source: str | Path, message: str, number: int, by_line: bool) -> DataError:
    """A DataError at file line ``number`` (``by_line``), else at row index ``number`` of a dataset."""
    if by_line:
        return DataError(source, message, line=number)
    return DataError(source, f"{message} (row index {number})")


def read_pairs(
    path: str | Path, format: str = "auto", columns: Columns | None = None, scores: bool = False
) -> PairData:
    """Read a file of labelled sentence pairs (JSONL, TSV or CSV) in one of the known layouts.

    ``columns`` names columns; given with any format, they override the layout's. With ``scores``
    the label is the layout's numeric score column (SICK's relatedness, STS-B's score) instead of
    its class, and numbers are labels too. Raises DataError, naming the file and line, for anything
    malformed.
    """
    formats = SCORE_FORMATS if scores else FORMATS
    if format not in formats:
        raise ValueError(f"unknown format {format!r} (expected one of: {', '.join(formats)})")
    path = Path(path)
    check_data_file(path)
    columns = columns or Columns()
    overrides = dataclasses.asdict(columns)
    try:
        container = format if format in ("csv", "tsv", "jsonl") else _sniff_container(path)
        with open(path, encoding="utf-8-sig", newline="") as f:
            if container == "jsonl":
                header, header_line, rows = jsonl_rows(path, f)
            else:
                header, header_line, rows = delimited_rows(path, f, container)
            layout = _resolve_layout(path, format, container, header, header_line, overrides, scores)
            named_columns = bool(columns.given())
            detected = format == "auto" and layout.name in _DISTINCTIVE_LAYOUTS and not named_columns
            strict = (format in _FORMAT_LAYOUT or detected) and not scores
            return _collect(
                path, layout, rows(layout.columns), header_line, strict_labels=strict, numeric=scores
            )
    except UnicodeDecodeError:
        line, detail = _find_bad_utf8(path)
        raise DataError(path, f"invalid UTF-8 ({detail}); expected UTF-8 text", line=line) from None


def load_hf_dataset(
    name_or_path: str | Path, split: str = "train", columns: Columns | None = None
) -> PairData:
    """Load one split of a HuggingFace dataset: a ``save_to_disk`` folder, or a hub name (needs internet).

    Columns are the given names, else the first known set found among the dataset's columns.
    ClassLabel labels become their names (in the feature's order); rows labelled -1 are dropped.
    """
    import datasets

    source = str(name_or_path)
    loaded = load_hf_split(name_or_path, split)
    names = list(loaded.column_names)
    known = f"columns: {', '.join(names)}"
    overrides = dataclasses.asdict(columns or Columns())
    layout = _detect(_HF_LAYOUTS, names) or _custom_layout(source, "hf", known, None, overrides)
    layout = _override(layout, overrides)
    missing = [c for c in layout.columns if c not in names]
    if missing:
        raise DataError(source, f"missing column {missing[0]!r} ({known})")

    feature = loaded.features[layout.label]
    labels: list[Any] = list(loaded[layout.label])
    if isinstance(feature, datasets.ClassLabel):
        layout = dataclasses.replace(layout, label_order=tuple(feature.names))
        labels = ["" if value is None or value < 0 else feature.names[value] for value in labels]
    text_columns = {name: list(loaded[name]) for name in layout.text_columns}
    records = (
        (row, {layout.label: value} | {name: texts[row] for name, texts in text_columns.items()})
        for row, value in enumerate(labels)
    )
    return _collect(source, layout, records, header_line=None, rows_are_lines=False)


def label_list(train: PairData, dev: PairData | None = None) -> list[str]:
    """The label vocabulary: the layout's canonical order when it covers every training label, else sorted.

    Raises DataError if the training data has fewer than two labels, or labels that are numbers of
    which some are fractions (scores, for ``--task regression``) or one number spelt two ways
    (``1`` and ``1.0``), or if ``dev`` has a label that the training data lacks.
    """
    seen = set(train.labels)
    if len(seen) < 2:
        raise DataError(
            train.source,
            f"every example has the label {train.labels[0]!r}; a classifier needs at least two labels",
        )
    _check_numeric_labels(train)
    if train.label_order is not None and seen <= set(train.label_order):
        labels = [name for name in train.label_order if name in seen]
    else:
        labels = sorted(seen)
    if dev is not None:
        for index, name in enumerate(dev.labels):
            if name not in seen:
                raise dev.error(
                    index, f"label {name!r} does not occur in the training data (known: {', '.join(labels)})"
                )
    return labels


def _check_numeric_labels(data: PairData) -> None:
    """Refuse labels that are all numbers where some are fractions, or where one number is spelt two
    ways: they are scores, or classes that would split by their spelling."""
    numbers: dict[str, float] = {}
    for name in dict.fromkeys(data.labels):
        try:
            numbers[name] = float(name)
        except ValueError:
            return
    by_value: dict[float, str] = {}
    for index, name in enumerate(data.labels):
        value = numbers[name]
        if not value.is_integer():
            raise data.error(
                index,
                f"label {name!r} is a fraction: the labels look like scores; train on them with "
                "--task regression",
            )
        first = by_value.setdefault(value, name)
        if first != name:
            raise data.error(
                index, f"label {name!r} is the number of label {first!r} spelt another way; write both alike"
            )


def _detect(layouts: tuple[_Layout, ...], header: list[str]) -> _Layout | None:
    """The first layout whose identifying columns are all in ``header``."""
    present = set(header)
    return next((layout for layout in layouts if present.issuperset(layout.identifying)), None)


def _override(layout: _Layout, overrides: dict[str, str | None]) -> _Layout:
    """``layout`` with the column names the user gave."""
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes.get("label", layout.label) != layout.label:
        changes["label_order"] = None  # another label column: the layout's label set no longer applies
    return dataclasses.replace(layout, **changes)


def _custom_layout(
    source: str | Path, name: str, known: str, line: int | None, overrides: dict[str, str | None]
) -> _Layout:
    """A layout made only of user-given column names, for data that matches no known layout."""
    text_a, label = overrides["text_a"], overrides["label"]
    if text_a is None or label is None:
        if any(value is not None for value in overrides.values()):
            hint = "name at least the text and label columns (--text-a and --label)"
        else:
            hint = "pass --format or name the columns with --text-a/--text-b/--label"
        raise DataError(source, f"no known layout matches the data ({known}); {hint}", line=line)
    return _Layout(name, text_a, overrides["text_b"], label, ())


def _resolve_layout(
    path: Path,
    format: str,
    container: str,
    header: list[str],
    header_line: int,
    overrides: dict[str, str | None],
    scores: bool = False,
) -> _Layout:
    """The layout named by ``format``, else the one detected from ``header``, with the user's columns;
    with ``scores``, its score column as the label."""
    kind, known = ("key", "first record has keys") if container == "jsonl" else ("column", "header has")
    known = f"{known}: {', '.join(header)}"
    if format in _FORMAT_LAYOUT:
        layout = _LAYOUT_BY_NAME[_FORMAT_LAYOUT[format]]
    else:
        layout = _detect(_LAYOUTS, header) or _custom_layout(path, container, known, header_line, overrides)
    if scores and overrides["label"] is None:
        if layout.score is None:
            raise DataError(
                path, f"the {layout.name} layout has no score column; name it with --label", line=header_line
            )
        layout = dataclasses.replace(layout, label=layout.score, label_order=None)
    layout = _override(layout, overrides)
    missing = [c for c in layout.columns if c not in header]
    if missing:
        raise DataError(path, f"missing {kind} {missing[0]!r} ({known})", line=header_line)
    return layout


def _collect(
    source: str | Path,
    layout: _Layout,
    records: Iterable[tuple[int, dict[str, Any]]],
    header_line: int | None,
    rows_are_lines: bool = True,
    strict_labels: bool = False,
    numeric: bool = False,
) -> PairData:
    """Validate records and gather their texts and labels, dropping unlabelled rows.

    Records are numbered by file line (``rows_are_lines``) or by row index (datasets). A label
    outside the layout's label set is an error where the user named the layout (``strict_labels``);
    where it was only detected from the columns, the file's own labels are kept and the layout's set
    no longer applies. With ``numeric``, JSON numbers are labels too (kept as text).
    """
    label_types = (int, float, str) if numeric else (int, str)

    def fail(message: str, number: int) -> DataError:
        return _located_error(source, message, number, rows_are_lines)

    texts: list[list[str]] = [[] for _ in layout.text_columns]
    labels: list[str] = []
    positions: list[int] = []
    label_order = layout.label_order
    dropped = 0
    first_label: tuple[str, int] | None = None  # (type name, row) of the first label, to catch mixed types
    for number, record in records:
        value = record[layout.label]
        if value is None:
            value = ""
        elif isinstance(value, label_types) and not isinstance(value, bool):
            kind = "number" if numeric and not isinstance(value, str) else kind_of(value)
            if first_label is None:
                first_label = (kind, number)
            elif kind != first_label[0]:
                where = "line" if rows_are_lines else "row index"
                raise fail(
                    f"label column {layout.label!r} mixes types: {kind} here, {first_label[0]} at "
                    f"{where} {first_label[1]}",
                    number,
                )
            value = str(value)
        else:
            expected = "a number" if numeric else "a string or integer label"
            raise fail(f"expected {expected} in {layout.label!r}, found {kind_of(value)}", number)
        value = value.strip()
        if value in _UNLABELLED:
            dropped += 1
            continue
        if label_order is not None and value not in label_order:
            known = ", ".join(label_order)
            if strict_labels:
                raise fail(f"unknown label {value!r} in {layout.label!r} (known: {known})", number)
            logger.info(
                "%s: label %r is not one of the %s layout's (%s): the file's own labels are used",
                source,
                value,
                layout.name,
                known,
            )
            label_order = None
        for column, column_texts in zip(layout.text_columns, texts, strict=True):
            text = record[column]
            if not isinstance(text, str):
                raise fail(f"expected text in {column!r}, found {kind_of(text)}", number)
            if not text.strip():
                raise fail(f"empty text in column {column!r}", number)
            column_texts.append(text.strip())
        labels.append(value)
        positions.append(number)

    if not labels:
        if dropped:
            raise DataError(source, f"no labelled rows left after dropping {dropped} unlabelled")
        raise DataError(source, "no data rows", line=header_line)
    if dropped:
        logger.info("%s: dropped %d unlabelled rows (label '-' or empty)", source, dropped)
    return PairData(
        text_a=texts[0],
        text_b=texts[1] if layout.text_b is not None else None,
        labels=labels,
        source=str(source),
        layout=layout.name,
        label_order=label_order,
        dropped=dropped,
        positions=positions,
        by_line=rows_are_lines,
    )


def _sniff_container(path: Path) -> str:
    """'jsonl' if the first non-blank character is '{' or the suffix is .jsonl, 'csv' for .csv, else 'tsv'."""
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    with open(path, encoding="utf-8-sig", newline="") as f:
        for line in f:
            if line.strip():
                if line.lstrip().startswith("{"):
                    return "jsonl"
                break
    return "csv" if path.suffix.lower() == ".csv" else "tsv"


def _find_bad_utf8(path: Path) -> tuple[int | None, str]:
    """The line number of the first line that is not valid UTF-8, and what is wrong there."""
    with open(path, "rb") as f:
        for line, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return line, f"byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line"
    return None, "undecodable bytes"
