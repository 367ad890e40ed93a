"""Evaluating an embedding model on pairs with a score: the Spearman and Pearson correlations of
their cosine similarities with the scores (sentence-transformers' embedding-similarity evaluator),
and the attention measures of its transformer over the same sentences."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ..evaluation import bi_encoder_measures
from ..regression.data import ScoredPairs
from ..regression.similarity import similarity_metrics


@dataclass
class EmbeddingEvaluation:
    """The cosine similarity of every pair and the metrics."""

    cosines: list[float]
    metrics: dict[str, float]


def evaluate_embedding(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: ScoredPairs,
    max_length: int,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
) -> EmbeddingEvaluation:
    """``similarity_metrics``, and the attention measures of the model's transformer over every
    sentence, one at a time, as the bi-encoder reads them."""
    metrics, cosines = similarity_metrics(model, data, batch_size)
    sentences = [*data.pairs.text_a, *data.pairs.text_b]
    measures = bi_encoder_measures(model, tokenizer, sentences, max_length, guide_config, batch_size)
    return EmbeddingEvaluation(cosines, {**metrics, **measures})


def prediction_rows(data: ScoredPairs, evaluation: EmbeddingEvaluation) -> list[dict]:
    """One JSON-ready row per pair: its texts, gold score and the cosine of their embeddings."""
    pairs = data.pairs
    return [
        {
            "index": i,
            "text_a": pairs.text_a[i],
            "text_b": pairs.text_b[i],
            "label": data.scores[i],
            "cosine": round(c, 6),
        }
        for i, c in enumerate(evaluation.cosines)
    ]
