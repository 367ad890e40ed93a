"""Ranking readers on real TREC QA files and on fixtures of the TREC and Cross-genre-IR layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnguide.errors import DataError
from attnguide.tasks.ranking.data import read_ranking

FIXTURES = Path(__file__).parent / "fixtures" / "ranking"


def trec(run: bool = True, docs: str = "docs.tsv"):
    return read_ranking(
        FIXTURES / "qrels.txt",
        queries=FIXTURES / "queries.tsv",
        docs=FIXTURES / docs,
        run=FIXTURES / "candidates.run" if run else None,
    )


def test_trecqa_dev_as_shipped(shared_data) -> None:
    data = read_ranking(shared_data / "trecqa" / "dev.csv")
    assert data.layout == "answer-selection"
    # 81 questions over 1,148 rows (data README); 3 have no correct sentence.
    assert data.summary() == {
        "queries": 81,
        "candidates": 1148,
        "relevant_candidates": 222,
        "unanswerable_queries": 3,
        "duplicates_dropped": 0,
    }
    first = data.candidates[0]
    assert (first.qid, first.docid) == ("1", "1-1")
    assert data.queries["1"] == "What ethnic group / race are Crip members ?"


def test_trecqa_train_slice_keeps_quotes_crlf_and_question_blocks(shared_data, tmp_path) -> None:
    raw = (shared_data / "trecqa" / "train.csv").read_bytes().split(b"\r\n")
    sliced = tmp_path / "slice.csv"
    sliced.write_bytes(b"\r\n".join(raw[:41]) + b"\r\n")  # header + 40 rows: questions of 27, 12, 1 rows
    data = read_ranking(sliced)
    assert len(data) == 40 and [len(data.qrels[q]) for q in data.queries] == [27, 12, 1]
    assert data.queries["1"].startswith("Who is the author of the book , `` The Iron Lady")
    assert data.candidates[0].text.startswith("the IRON LADY ; A Biography of Margaret Thatcher")
    assert not any("\r" in c.text for c in data.candidates)
    assert sum(data.qrels["1"].values()) == 4  # the four sentences that name Hugo Young
    assert [c.qid for c in data.candidates] == sorted(c.qid for c in data.candidates)


def test_trec_layout_with_a_candidate_run() -> None:
    data = trec()
    assert data.layout == "trec" and list(data.queries) == ["q1", "q2", "q3"]  # q4 has no candidates
    assert [(c.qid, c.docid) for c in data.candidates[:3]] == [("q1", "d2"), ("q1", "d1"), ("q1", "d3")]
    assert data.candidates[1].text == "Paris is the capital and largest city of France."
    # d9 is judged relevant for q1 but not retrieved: it stays in the qrels, so recall can miss it.
    assert data.qrels["q1"] == {"d1": 1, "d2": 0, "d9": 1} and data.qrels["q2"]["d4"] == 2
    assert data.unanswerable == ["q3"]
    assert data.summary()["relevant_candidates"] == 2


def test_trec_layout_without_a_run_ranks_the_judged_documents() -> None:
    data = trec(run=False, docs="docs.jsonl")
    assert list(data.queries) == ["q1", "q2", "q3", "q4"] and len(data) == 9
    assert data.candidates[0].text == "Paris Paris is the capital and largest city of France."  # title first
    assert data.unanswerable == ["q3", "q4"]


def test_cross_genre_ir_groups_claims_and_uses_pmids() -> None:
    data = read_ranking(FIXTURES / "cross_genre_ir.csv")
    assert data.layout == "cross-genre-ir"
    assert data.queries == {
        "1": "Coffee lowers the risk of liver disease",
        "2": "Daily walking improves sleep",
        "3": "Red wine prevents heart attacks",
    }
    assert data.qrels["1"] == {"1001": 1, "1002": 0, "1004": 1}  # rows 1, 2 and 4: not contiguous
    assert data.qrels["2"] == {"1003": 1, "1002": 0}  # the repeated (claim, 1003) row is dropped
    assert data.duplicates == 1 and len(data) == 7 and data.unanswerable == ["3"]


def test_cross_genre_ir_plain_names_and_latin1(tmp_path) -> None:
    path = tmp_path / "cgir.csv"
    path.write_bytes("claim,abstract,label\nCaf\xe9 au lait,Le caf\xe9 est bon.,1\n".encode("latin-1"))
    data = read_ranking(path)
    assert data.queries == {"1": "Café au lait"} and data.candidates[0].docid == "1-1"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad_label.csv",
            "qtext,label,atext\nq?,1,a\nq?,yes,b\n",
            "bad_label.csv:3: expected a whole number",
        ),
        ("empty_text.csv", "qtext,label,atext\nq?,1,\n", "empty_text.csv:2: empty text in column 'atext'"),
        ("unknown.csv", "question,answer\nq,a\n", "cannot tell the ranking layout"),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_ranking(path)


def test_trec_errors_name_the_offending_line(tmp_path) -> None:
    run = tmp_path / "missing.run"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 nowhere 2 1.0 x\n")
    with pytest.raises(DataError, match=r"missing.run:2: document 'nowhere' is not in"):
        read_ranking(
            FIXTURES / "qrels.txt", queries=FIXTURES / "queries.tsv", docs=FIXTURES / "docs.tsv", run=run
        )
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\nq1 d2 0\n")
    with pytest.raises(DataError, match=r"qrels.txt:2: expected 4 fields"):
        read_ranking(qrels, queries=FIXTURES / "queries.tsv", docs=FIXTURES / "docs.tsv")
    with pytest.raises(DataError, match="needs --docs"):
        read_ranking(FIXTURES / "qrels.txt", format="trec", queries=FIXTURES / "queries.tsv")
    with pytest.raises(DataError, match="--run belong to the trec layout"):
        read_ranking(FIXTURES / "cross_genre_ir.csv", run=FIXTURES / "candidates.run")


def test_unclosed_quote_stops_at_the_line_where_the_field_starts(tmp_path) -> None:
    path = tmp_path / "trecqa.csv"
    path.write_bytes(b'qtext,label,atext\r\nq?,1,a\r\n\r\nq?,0,"half a sentence\r\nq?,1,c\r\nq?,0,d\r\n')
    with pytest.raises(DataError) as caught:
        read_ranking(path)
    assert str(caught.value) == f"{path}:4: malformed comma-separated row: unexpected end of data"


def test_trec_files_break_lines_only_at_newlines(tmp_path) -> None:
    qrels, queries, docs = tmp_path / "qrels.txt", tmp_path / "queries.tsv", tmp_path / "docs.tsv"
    qrels.write_text("q1 0 d1 1\r\n")
    query = "Where\u2028is the capital?"
    queries.write_text(f"q1\t{query}\r\n", encoding="utf-8")
    text = "Paris\u2028is\x85the capital\x1cof\x0cFrance\x0b\u2029and its largest city."
    docs.write_text(f"d1\t{text}\r\n", encoding="utf-8")
    data = read_ranking(qrels, queries=queries, docs=docs)
    assert data.queries == {"q1": query} and data.candidates[0].text == text
    docs.write_bytes(b"d1\tParis\x85 the capital, \xe9t\xe9\n")  # cp1252 ellipsis, read as Latin-1
    assert read_ranking(qrels, queries=queries, docs=docs).candidates[0].text == "Paris\x85 the capital, été"
    # a line break other than a newline does not shift the numbers of the lines after it
    qrels.write_text("q1 0 d1 1\u2028\nq1 0 d2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qrels.txt:2: expected 4 fields"):
        read_ranking(qrels, queries=queries, docs=docs)
