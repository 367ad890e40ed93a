"""Evaluating a cross-encoder reranker: scores, rankings, ranking metrics and attention diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ..evaluation import eval_pass
from .data import RankingData
from .encoding import EncodedPairs
from .metrics import Run, ranking_metrics
from .scoring import build_run, score_pairs


@dataclass
class RankingEvaluation:
    """The ranking of every query and the metrics over them."""

    run: Run
    metrics: dict[str, float]


def evaluate_ranking(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: RankingData,
    encoded: EncodedPairs,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
    keep_unanswerable: bool = False,
) -> RankingEvaluation:
    """Score every candidate, rank each query's candidates and measure the ranking.

    The metrics are those of ``ranking_metrics``, the number of truncated pairs, and, from
    an eval pass over the same pairs (``tasks.evaluation.eval_pass``), the guiding losses and attention
    diagnostics that classification runs report (``mdg_loss``, ``pdg_loss``, ``head_similarity``,
    ``special_token_share``).
    """
    run = build_run(data, score_pairs(model, tokenizer, encoded.dataset, batch_size))
    metrics = ranking_metrics(data.qrels, run, keep_unanswerable)
    metrics.update(truncated_pairs=encoded.truncated, query_truncated_pairs=encoded.query_cut)
    measures: dict[str, float] = {}
    pairs = encoded.dataset.remove_columns([c for c in ("labels",) if c in encoded.dataset.column_names])
    for _ in eval_pass(model, tokenizer, pairs, measures, guide_config, batch_size):
        pass
    metrics.update(measures)
    return RankingEvaluation(run, metrics)
