"""Readers that turn ranking data into queries, candidate documents and relevance judgements.

Three layouts, all read into one ``RankingData``:

- ``answer-selection``: a CSV with header ``qtext,label,atext``, one row per (question, sentence),
  the rows of a question contiguous (TREC QA, WikiQA as commonly shipped). Queries and documents
  get numbered ids: question ``7`` and its third sentence ``7-3``.
- ``cross-genre-ir``: a CSV of (claim, abstract, label) pairs, with the column names of the paper's
  released code (``Hypothesis``, ``Premise``, ``Entails`` and optionally ``PMID``) or ``claim``,
  ``abstract``, ``label`` and optionally ``pmid``. Rows are grouped by claim text; a document's id is
  its PMID where there is one.
- ``trec``: a queries TSV (``qid<TAB>text``), a documents TSV (``docid<TAB>text``) or JSONL
  (``docid``/``doc_id``/``_id``/``id`` and ``text``, with ``title`` put in front where present), a
  qrels file (``qid 0 docid rel``) and, optionally, a candidate run (``qid Q0 docid rank score tag``)
  whose documents are the ones to rerank; without a run, the judged documents are the candidates.

Every reader says how many queries have no relevant document: ranking metrics leave them out by default.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ...errors import DataError
from ..readers import check_data_file, delimited_rows, require_columns

logger = logging.getLogger("attnguide")

RANKING_FORMATS = ("auto", "answer-selection", "cross-genre-ir", "trec")

_ANSWER_SELECTION = ("qtext", "label", "atext")
# (query, document, label, optional document id) column names of the Cross-genre-IR layout.
_CROSS_GENRE_IR = (("Hypothesis", "Premise", "Entails", "PMID"), ("claim", "abstract", "label", "pmid"))
_DOCUMENT_ID_KEYS = ("docid", "doc_id", "_id", "id")


@dataclass(frozen=True)
class Candidate:
    """One document to score for one query."""

    qid: str
    docid: str
    text: str


@dataclass
class RankingData:
    """Queries, the candidate documents of each, and relevance judgements (``qrels[qid][docid]``)."""

    queries: dict[str, str]
    candidates: list[Candidate]
    qrels: dict[str, dict[str, int]]
    source: str
    layout: str
    files: tuple[str, ...]
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.candidates)

    def first(self, limit: int) -> RankingData:
        """The first ``limit`` candidate pairs and their queries (all with 0)."""
        if limit == 0 or limit >= len(self):
            return self
        candidates = self.candidates[:limit]
        qids = dict.fromkeys(c.qid for c in candidates)
        return replace(
            self,
            queries={q: self.queries[q] for q in qids},
            candidates=candidates,
            qrels={q: self.qrels[q] for q in qids if q in self.qrels},
        )

    def relevance(self, candidate: Candidate) -> int:
        """The judged relevance of a candidate; unjudged documents count as 0."""
        return self.qrels.get(candidate.qid, {}).get(candidate.docid, 0)

    @property
    def unanswerable(self) -> list[str]:
        """The queries without any relevant (relevance > 0) document."""
        return [q for q in self.queries if not any(r > 0 for r in self.qrels.get(q, {}).values())]

    def summary(self) -> dict[str, int]:
        """Counts for logs and run.json."""
        return {
            "queries": len(self.queries),
            "candidates": len(self.candidates),
            "relevant_candidates": sum(self.relevance(c) > 0 for c in self.candidates),
            "unanswerable_queries": len(self.unanswerable),
            "duplicates_dropped": self.duplicates,
        }


def read_ranking(
    path: str | Path,
    format: str = "auto",
    queries: str | Path | None = None,
    docs: str | Path | None = None,
    run: str | Path | None = None,
) -> RankingData:
    """Read ranking data; ``path`` is the CSV, or the qrels file of the ``trec`` layout.

    ``auto`` picks ``trec`` when ``queries`` or ``docs`` is given (it needs both), else the CSV
    layout its header names. Raises DataError, naming the file and line, for anything malformed.
    """
    if format not in RANKING_FORMATS:
        raise ValueError(f"unknown ranking format {format!r} (expected one of: {', '.join(RANKING_FORMATS)})")
    trec_files = {"--queries": queries, "--docs": docs}
    if format == "auto":
        format = "trec" if queries is not None or docs is not None else _detect_csv_layout(Path(path))
        detected = "detected"
    else:
        detected = "given"
    if format == "trec":
        missing = [flag for flag, value in trec_files.items() if value is None]
        if missing:
            raise DataError(path, f"the trec layout needs {' and '.join(missing)} beside the qrels file")
        data = read_trec(path, queries, docs, run)
    else:
        given = [flag for flag, value in {**trec_files, "--run": run}.items() if value is not None]
        if given:
            raise DataError(path, f"{', '.join(given)} belong to the trec layout, not {format}")
        data = read_answer_selection(path) if format == "answer-selection" else read_cross_genre_ir(path)
    counts = data.summary()
    logger.info(
        "ranking data: %s, layout %s (%s), %d queries, %d candidate pairs (%d relevant), "
        "%d queries without a relevant document",
        data.source,
        data.layout,
        detected,
        counts["queries"],
        counts["candidates"],
        counts["relevant_candidates"],
        counts["unanswerable_queries"],
    )
    return data


def read_answer_selection(path: str | Path) -> RankingData:
    """An answer-selection CSV (``qtext,label,atext``); a question's rows must be contiguous.

    A question text that comes back after other questions starts a new query (and is logged).
    """
    path = Path(path)
    queries: dict[str, str] = {}
    candidates: list[Candidate] = []
    qrels: dict[str, dict[str, int]] = {}
    seen_texts: set[str] = set()
    repeated = 0
    current = None
    for line, record in _csv_records(path, _ANSWER_SELECTION):
        question, answer = _text(record, "qtext", path, line), _text(record, "atext", path, line)
        if question != current:
            repeated += question in seen_texts
            seen_texts.add(question)
            current = question
            qid = str(len(queries) + 1)
            queries[qid] = question
            qrels[qid] = {}
        docid = f"{qid}-{len(qrels[qid]) + 1}"
        qrels[qid][docid] = _relevance(record["label"], "label", path, line)
        candidates.append(Candidate(qid, docid, answer))
    if repeated:
        logger.warning(
            "%s: %d questions come back after other questions' rows; each block is ranked as its own query",
            path,
            repeated,
        )
    return _checked(RankingData(queries, candidates, qrels, str(path), "answer-selection", (str(path),)))


def read_cross_genre_ir(path: str | Path) -> RankingData:
    """A Cross-genre-IR CSV of (claim, abstract, label[, PMID]) rows, grouped by claim.

    A (claim, document id) pair that occurs again is dropped and counted.
    """
    path = Path(path)
    header = _csv_header(path)
    columns = next((c for c in _CROSS_GENRE_IR if set(c[:3]) <= set(header)), None)
    if columns is None:
        expected = " or ".join(",".join(c[:3]) for c in _CROSS_GENRE_IR)
        raise DataError(path, f"expected the columns {expected} (header has: {', '.join(header)})", line=1)
    claim_column, abstract_column, label_column, id_column = columns
    has_ids = id_column in header
    qid_of: dict[str, str] = {}
    queries: dict[str, str] = {}
    candidates: list[Candidate] = []
    qrels: dict[str, dict[str, int]] = {}
    duplicates = 0
    for line, record in _csv_records(path, columns if has_ids else columns[:3]):
        claim = _text(record, claim_column, path, line)
        abstract = _text(record, abstract_column, path, line)
        qid = qid_of.setdefault(claim, str(len(qid_of) + 1))
        if qid not in queries:
            queries[qid], qrels[qid] = claim, {}
        docid = record[id_column].strip() if has_ids else ""
        if any(ch.isspace() for ch in docid):
            raise DataError(path, f"document id {docid!r} in {id_column!r} contains whitespace", line=line)
        docid = docid or f"{qid}-{len(qrels[qid]) + 1}"
        if docid in qrels[qid]:
            duplicates += 1
            continue
        qrels[qid][docid] = _relevance(record[label_column], label_column, path, line)
        candidates.append(Candidate(qid, docid, abstract))
    if duplicates:
        logger.warning("%s: dropped %d repeated (claim, document) rows", path, duplicates)
    data = RankingData(queries, candidates, qrels, str(path), "cross-genre-ir", (str(path),), duplicates)
    return _checked(data)


def read_trec(
    qrels: str | Path, queries: str | Path, docs: str | Path, run: str | Path | None = None
) -> RankingData:
    """TREC-style files: the candidates are the run's documents, or the judged ones without a run.

    Only the documents that some candidate needs are kept from the documents file.
    """
    qrels_path, queries_path, docs_path = Path(qrels), Path(queries), Path(docs)
    judgements = _read_qrels(qrels_path)
    pairs = _read_run(Path(run)) if run is not None else _judged_pairs(judgements)
    pairs_source = Path(run) if run is not None else qrels_path
    all_queries = _read_queries(queries_path)
    texts = _read_documents(docs_path, {docid for _, docid, _ in pairs})
    queries: dict[str, str] = {}
    candidates: list[Candidate] = []
    for qid, docid, line in pairs:
        if qid not in all_queries:
            raise DataError(pairs_source, f"query {qid!r} is not in {queries_path}", line=line)
        if docid not in texts:
            raise DataError(pairs_source, f"document {docid!r} is not in {docs_path}", line=line)
        queries.setdefault(qid, all_queries[qid])
        candidates.append(Candidate(qid, docid, texts[docid]))
    uncovered = len(set(judgements) - set(queries))
    if uncovered:
        logger.info("%s: %d judged queries have no candidates and are not ranked", qrels_path, uncovered)
    files = tuple(str(p) for p in (qrels_path, queries_path, docs_path, run) if p is not None)
    restricted = {q: judgements.get(q, {}) for q in queries}
    return _checked(RankingData(queries, candidates, restricted, str(qrels_path), "trec", files))


def _checked(data: RankingData) -> RankingData:
    if not data.candidates:
        raise DataError(data.source, "no candidate (query, document) pairs")
    return data


def _text(record: dict[str, str], column: str, path: Path, line: int) -> str:
    text = record[column].strip()
    if not text:
        raise DataError(path, f"empty text in column {column!r}", line=line)
    return text


def _relevance(value: str, column: str, path: Path, line: int) -> int:
    """A label as a whole number >= 0 (``1`` and ``1.0`` alike)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not number.is_integer() or number < 0:
        raise DataError(path, f"expected a whole number >= 0 in {column!r}, found {text!r}", line=line)
    return int(number)


def _decoded(path: Path) -> str:
    """A text file's contents: UTF-8 (with or without BOM), else Latin-1, as the released IR data is."""
    check_data_file(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        logger.warning("%s: not valid UTF-8, read as Latin-1", path)
        return raw.decode("latin-1")


def _csv(path: Path):
    """The header, its line and the row reader of a CSV file (``readers.delimited_rows``)."""
    return delimited_rows(path, io.StringIO(_decoded(path), newline=""), "csv")


def _csv_header(path: Path) -> list[str]:
    return _csv(path)[0]


def _csv_records(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) for each data row, after checking the header has ``columns``."""
    header, header_line, rows = _csv(path)
    require_columns(path, header, header_line, columns)
    return rows(columns)


def _detect_csv_layout(path: Path) -> str:
    header = set(_csv_header(path))
    if set(_ANSWER_SELECTION) <= header:
        return "answer-selection"
    if any(set(columns[:3]) <= header for columns in _CROSS_GENRE_IR):
        return "cross-genre-ir"
    raise DataError(
        path,
        f"cannot tell the ranking layout from the header ({', '.join(sorted(header))}): expected "
        "qtext,label,atext (answer selection), Hypothesis,Premise,Entails or claim,abstract,label "
        "(Cross-genre-IR), or a qrels file with --queries and --docs (trec)",
        line=1,
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without line end) of each non-blank line. Only a newline (LF or CRLF) ends
    a line, not the other breaks ``str.splitlines`` knows (U+2028, U+0085, form feed, ...)."""
    for number, text in enumerate(_decoded(path).split("\n"), 1):
        if text.strip():
            yield number, text.removesuffix("\r")


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for line, text in _lines(path):
        qid, tab, query = text.partition("\t")
        if not tab or not qid.strip() or not query.strip():
            raise DataError(path, "expected a query id, a tab and the query text", line=line)
        queries[qid.strip()] = query.strip()
    return queries


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line, text in _lines(path):
        fields = text.split()
        if len(fields) != 4:
            raise DataError(
                path, f"expected 4 fields 'qid 0 docid relevance', found {len(fields)}", line=line
            )
        try:
            relevance = int(fields[3])
        except ValueError:
            raise DataError(
                path, f"expected a whole-number relevance, found {fields[3]!r}", line=line
            ) from None
        qrels.setdefault(fields[0], {})[fields[2]] = relevance
    if not qrels:
        raise DataError(path, "no relevance judgements")
    return qrels


def _read_run(path: Path) -> list[tuple[str, str, int | None]]:
    """(qid, docid, line) of each line of a TREC run, in file order; a repeated pair is an error."""
    pairs: list[tuple[str, str, int | None]] = []
    seen: set[tuple[str, str]] = set()
    for line, text in _lines(path):
        fields = text.split()
        if len(fields) != 6:
            raise DataError(
                path, f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}", line=line
            )
        pair = (fields[0], fields[2])
        if pair in seen:
            raise DataError(path, f"document {pair[1]!r} is listed twice for query {pair[0]!r}", line=line)
        seen.add(pair)
        pairs.append((*pair, line))
    return pairs


def _judged_pairs(qrels: dict[str, dict[str, int]]) -> list[tuple[str, str, int | None]]:
    """(qid, docid, no line) of every judged document, the candidates when there is no run."""
    return [(qid, docid, None) for qid, docs in qrels.items() for docid in docs]


def _read_documents(path: Path, wanted: set[str]) -> dict[str, str]:
    """The texts of the ``wanted`` documents from a TSV or JSONL collection."""
    is_jsonl = path.suffix.lower() == ".jsonl"
    texts: dict[str, str] = {}
    for line, text in _lines(path):
        if is_jsonl or text.lstrip().startswith("{"):
            docid, body = _json_document(path, line, text)
        else:
            docid, tab, body = text.partition("\t")
            if not tab:
                raise DataError(path, "expected a document id, a tab and the document text", line=line)
            docid, body = docid.strip(), body.replace("\t", " ").strip()
        if docid in wanted:
            if not body:
                raise DataError(path, f"document {docid!r} has no text", line=line)
            texts[docid] = body
    return texts


def _json_document(path: Path, line: int, text: str) -> tuple[str, str]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, f"invalid JSON ({error.msg})", line=line) from None
    if not isinstance(record, dict):
        raise DataError(path, "expected a JSON object on each line", line=line)
    key = next((k for k in _DOCUMENT_ID_KEYS if k in record), None)
    if key is None or not isinstance(record.get("text"), str):
        raise DataError(path, f"expected a text and an id key ({', '.join(_DOCUMENT_ID_KEYS)})", line=line)
    title = record.get("title")
    body = (
        f"{title.strip()} {record['text'].strip()}"
        if isinstance(title, str) and title.strip()
        else record["text"]
    )
    return str(record[key]).strip(), body.strip()
