"""Rankings from candidates' scores, by either encoder: run dicts (``run[qid][docid] = score``), a
ranking's evaluation, TREC run files and the predictions rows."""

from __future__ import annotations

from dataclasses import dataclass

from .data import RankingData
from .ranking_metrics import Run


@dataclass
class RankingEvaluation:
    """The ranking of every query and the metrics over them."""

    run: Run
    metrics: dict[str, float]


def build_run(data: RankingData, scores: list[float]) -> Run:
    """``run[qid][docid] = score`` for every candidate."""
    run: Run = {}
    for candidate, score in zip(data.candidates, scores, strict=True):
        run.setdefault(candidate.qid, {})[candidate.docid] = score
    return run


def ranked(run: Run) -> list[tuple[str, str, int, float]]:
    """(qid, docid, rank from 1, score) for each query's documents, best score first."""
    rows = []
    for qid, docs in run.items():
        order = sorted(docs.items(), key=lambda item: -item[1])
        rows += [(qid, docid, rank, score) for rank, (docid, score) in enumerate(order, 1)]
    return rows


def trec_run_text(run: Run, tag: str) -> str:
    """The run in TREC format, ``qid Q0 docid rank score tag`` per line, exact enough to re-evaluate."""
    return "".join(f"{qid} Q0 {docid} {rank} {score:.9g} {tag}\n" for qid, docid, rank, score in ranked(run))


def prediction_rows(data: RankingData, run: Run) -> list[dict]:
    """One JSON-ready row per candidate, in ranked order: ids, rank, score, relevance and both texts."""
    texts = {(c.qid, c.docid): c.text for c in data.candidates}
    return [
        {
            "qid": qid,
            "docid": docid,
            "rank": rank,
            "score": round(score, 6),
            "relevance": data.qrels.get(qid, {}).get(docid, 0),
            "query": data.queries[qid],
            "document": texts[(qid, docid)],
        }
        for qid, docid, rank, score in ranked(run)
    ]
