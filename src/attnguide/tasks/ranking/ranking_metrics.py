"""Ranking metrics, computed by ir-measures (trec_eval's definitions through pytrec_eval).

This module only chooses the queries and builds the qrels and run dictionaries; every number comes
from the library.
"""

from __future__ import annotations

from ...errors import AttnguideError

RECALL_CUTOFFS = (1, 3, 5, 10, 20, 50, 100)
MEASURES = ("map", "mrr", "ndcg@10", "p@1", *(f"recall@{k}" for k in RECALL_CUTOFFS))
"""The ranking metrics, by the names metrics.json gives them."""


def _ir_measures() -> dict:
    """Each of ``MEASURES`` as an ir-measures measure (imported here: it is slow to import)."""
    from ir_measures import AP, RR, P, R, nDCG

    return {
        "map": AP,
        "mrr": RR,
        "ndcg@10": nDCG @ 10,
        "p@1": P @ 1,
        **{f"recall@{k}": R @ k for k in RECALL_CUTOFFS},
    }


Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


def ranking_metrics(qrels: Qrels, run: Run, keep_unanswerable: bool = False) -> dict[str, float]:
    """MAP, MRR, nDCG@10, P@1 and recall@k over the queries of ``run``, averaged over queries.

    A query counts as relevant documents those judged > 0, including any missing from the run.
    Queries without a relevant document are left out of the averages, or, with
    ``keep_unanswerable``, count with every metric 0. ``queries_evaluated``,
    ``queries_unanswerable`` and ``unanswerable_left_out`` say which.
    """
    answerable = [q for q in run if any(r > 0 for r in qrels.get(q, {}).values())]
    evaluated = list(run) if keep_unanswerable else answerable
    if not evaluated:
        raise AttnguideError("no query to evaluate: none of the ranked queries has a relevant document")
    # A query with no judgement at all still needs one qrels entry to be scored (as 0).
    judged = {q: qrels.get(q) or dict.fromkeys(run[q], 0) for q in evaluated}
    import ir_measures

    measures = _ir_measures()
    values = ir_measures.calc_aggregate(measures.values(), judged, {q: run[q] for q in evaluated})
    metrics: dict[str, float] = {name: float(values[measure]) for name, measure in measures.items()}
    unanswerable = len(run) - len(answerable)
    metrics.update(
        queries_evaluated=len(evaluated),
        queries_unanswerable=unanswerable,
        unanswerable_left_out=0 if keep_unanswerable else unanswerable,
    )
    return metrics
