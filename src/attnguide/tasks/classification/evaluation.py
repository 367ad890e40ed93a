"""Evaluating a pair classifier: predictions, accuracy and macro F1, and the attention measures."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ..evaluation import eval_pass
from ..pairs.data import PairData
from .metrics import classification_metrics


@dataclass
class Evaluation:
    """Per-example predicted label ids and class probabilities, and the metrics over the data set."""

    predictions: list[int]
    probabilities: list[list[float]]
    metrics: dict[str, float]


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
) -> Evaluation:
    """Predict every example; with labels, ``accuracy`` and ``macro_f1``; and in the same pass the
    attention measures (each guide's loss on the config's guided layers and scope,
    ``head_similarity``, ``special_token_share``)."""
    predictions: list[int] = []
    probabilities: list[list[float]] = []
    labels: list[int] = []
    measures: dict[str, float] = {}
    for logits, batch in eval_pass(model, tokenizer, dataset, measures, guide_config, batch_size):
        probabilities += torch.softmax(logits, -1).tolist()
        predictions += logits.argmax(-1).tolist()
        labels += batch["labels"].tolist() if "labels" in batch else []
    metrics = classification_metrics(labels, predictions) if labels else {}
    metrics.update(measures)
    return Evaluation(predictions, probabilities, metrics)


def prediction_rows(data: PairData, evaluation: Evaluation, id2label: dict[int, str]) -> list[dict]:
    """One JSON-ready row per example: its texts, gold label, predicted label and class probabilities."""
    rows = []
    for i, (pred, probs) in enumerate(zip(evaluation.predictions, evaluation.probabilities, strict=True)):
        rows.append(
            {
                "index": i,
                "text_a": data.text_a[i],
                "text_b": data.text_b[i] if data.text_b is not None else None,
                "label": data.labels[i] if data.labels else None,
                "prediction": id2label[pred],
                "probabilities": {id2label[j]: round(p, 6) for j, p in enumerate(probs)},
            }
        )
    return rows
