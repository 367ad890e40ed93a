"""Evaluating a regression model: a score per pair, correlations, and the attention measures."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ..evaluation import eval_pass
from ..pairs.encoding import encode_pairs
from .data import ScoredPairs
from .metrics import regression_metrics


@dataclass
class ScoreEvaluation:
    """The predicted score of every pair (on the data's own scale) and the metrics."""

    predictions: list[float]
    metrics: dict[str, float]


def unscale(value: float, label_range: tuple[float, float] | None) -> float:
    """A prediction on the data's scale from the model's 0-1 output (as is without a range)."""
    return value if label_range is None else label_range[0] + value * (label_range[1] - label_range[0])


def evaluate_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: ScoredPairs,
    max_length: int,
    label_range: tuple[float, float] | None = None,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
    sigmoid: bool = False,
) -> ScoreEvaluation:
    """Score every pair and measure the scores against the gold ones (``regression_metrics``), with
    the attention measures of the same pass. ``sigmoid``: the model was trained with
    ``--regression-loss bce``, so its output is the logit of the scaled score."""
    dataset = encode_pairs(data.pairs, tokenizer, max_length)
    predictions: list[float] = []
    measures: dict[str, float] = {}
    for logits, _ in eval_pass(model, tokenizer, dataset, measures, guide_config, batch_size):
        outputs = logits[:, 0].sigmoid() if sigmoid else logits[:, 0]
        predictions += [unscale(v, label_range) for v in outputs.tolist()]
    metrics = regression_metrics(data.scores, predictions)
    metrics.update(measures)
    return ScoreEvaluation(predictions, metrics)


def prediction_rows(data: ScoredPairs, evaluation: ScoreEvaluation) -> list[dict]:
    """One JSON-ready row per pair: its texts, gold score and predicted score."""
    pairs = data.pairs
    return [
        {
            "index": i,
            "text_a": pairs.text_a[i],
            "text_b": pairs.text_b[i] if pairs.text_b is not None else None,
            "label": data.scores[i],
            "prediction": round(prediction, 6),
        }
        for i, prediction in enumerate(evaluation.predictions)
    ]
