"""Ranking metrics on a hand-made ranking worked out on paper, and the TREC run file round trip."""

from __future__ import annotations

import ir_measures
import pytest

from attnguide.tasks.ranking.ranking_metrics import ranking_metrics
from attnguide.tasks.ranking.trec_runs import trec_run_text

# q1: 2 relevant (d1, d3). Ranked d2 d1 d4 d3 d5 -> relevant at ranks 2 and 4.
#     AP = (1/2 + 2/4) / 2 = 0.5; RR = 1/2; P@1 = 0; R@1 = 0, R@3 = 1/2, R@5 = 2/2 = 1.
#     DCG@10 = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061607
#     IDCG   = 1 + 1/log2(3) = 1.630930;  nDCG@10 = 0.650921
# q2: 2 relevant (a, and z which the run never retrieved). Ranked a b c -> a at rank 1.
#     AP = (1/1) / 2 = 0.5 (z counts as missed); RR = 1; P@1 = 1; R@1 = R@3 = R@5 = 1/2.
#     DCG@10 = 1; IDCG = 1.630930; nDCG@10 = 0.613147
# q3: no relevant document (unanswerable). Every metric is 0 if it is counted.
QRELS = {
    "q1": {"d1": 1, "d2": 0, "d3": 1, "d4": 0, "d5": 0},
    "q2": {"a": 1, "b": 0, "c": 0, "z": 1},
    "q3": {"x": 0, "y": 0},
}
RUN = {
    "q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6, "d5": 0.5},
    "q2": {"a": 3.0, "b": 2.0, "c": 1.0},
    "q3": {"x": 0.2, "y": 0.1},
}


def test_map_and_mrr_leave_unanswerable_queries_out_by_default() -> None:
    metrics = ranking_metrics(QRELS, RUN)
    assert metrics["map"] == pytest.approx((0.5 + 0.5) / 2)  # 0.5
    assert metrics["mrr"] == pytest.approx((0.5 + 1.0) / 2)  # 0.75
    assert metrics["p@1"] == pytest.approx((0 + 1) / 2)
    assert metrics["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert metrics["recall@3"] == pytest.approx((0.5 + 0.5) / 2)
    assert metrics["recall@5"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["recall@100"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["ndcg@10"] == pytest.approx((0.650921 + 0.613147) / 2, abs=1e-6)
    counts = ("queries_evaluated", "queries_unanswerable", "unanswerable_left_out")
    assert [metrics[name] for name in counts] == [2, 1, 1]


def test_keep_unanswerable_counts_them_as_zero() -> None:
    metrics = ranking_metrics(QRELS, RUN, keep_unanswerable=True)
    assert metrics["map"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert metrics["mrr"] == pytest.approx((0.5 + 1.0 + 0) / 3)
    assert (metrics["queries_evaluated"], metrics["unanswerable_left_out"]) == (3, 0)


def test_a_ranked_query_without_any_judgement_is_unanswerable() -> None:
    run = {**RUN, "q9": {"k": 1.0}}
    assert ranking_metrics(QRELS, run)["queries_unanswerable"] == 2
    kept = ranking_metrics(QRELS, run, keep_unanswerable=True)
    assert kept["map"] == pytest.approx(1.0 / 4) and kept["queries_evaluated"] == 4


def test_trec_run_file_reevaluates_to_the_same_numbers(tmp_path) -> None:
    text = trec_run_text(RUN, "mine")
    assert text.splitlines()[:2] == ["q1 Q0 d2 1 0.9 mine", "q1 Q0 d1 2 0.8 mine"]
    path = tmp_path / "x.run"
    path.write_text(text)
    reread: dict[str, dict[str, float]] = {}
    for row in ir_measures.read_trec_run(str(path)):
        reread.setdefault(row.query_id, {})[row.doc_id] = row.score
    assert ranking_metrics(QRELS, reread) == ranking_metrics(QRELS, RUN)
