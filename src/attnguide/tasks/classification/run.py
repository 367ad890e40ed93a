"""A classification training run (the ``TrainingRun`` that ``training.pipeline.run_training``
drives) and evaluating a pair classifier: predictions, accuracy and macro F1, and the attention
measures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...files import write_jsonl
from ...guiding.config import GuideConfig
from ...models import load_model
from ...training.training_run import TrainingRun, TrainSetup, source_sha256
from ..eval_pass import eval_pass
from ..pairs.data import PairData, label_list, load_hf_dataset, read_pairs
from ..pairs.encoding import encode_pairs

if TYPE_CHECKING:
    from .task import ClassificationOptions

logger = logging.getLogger("attnguide")


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """``CLASSIFICATION_METRICS``: accuracy and macro-averaged F1 (scikit-learn's)."""
    from sklearn.metrics import accuracy_score, f1_score  # here: scikit-learn is slow to import

    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
    }


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


class ClassificationRun(TrainingRun):
    """Pair classification: labelled pairs in, accuracy and the attention diagnostics out."""

    name = "classification"
    adapter_task_type = "SEQ_CLS"
    options: ClassificationOptions

    def read_file(self, path: str) -> PairData:
        return read_pairs(path, self.options.format, self.options.columns)

    def read_dataset(self, name: str, split: str) -> PairData:
        return load_hf_dataset(name, split, self.options.columns)

    def read(self) -> list[str]:
        options = self.options
        self.train_data = self.read_split(options.train, options.train_split)
        self.dev_data = self.read_split(options.dev, options.dev_split)
        self.labels = label_list(self.train_data, self.dev_data)
        logger.info(
            "training data: %s, %d examples, layout %s, labels %s",
            self.train_data.source,
            len(self.train_data),
            self.train_data.layout,
            ", ".join(self.labels),
        )
        return self.labels

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        return load_model(name, labels)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        max_length = self.options.max_length
        train_set = encode_pairs(self.train_data, tokenizer, max_length, label2id)
        dev_data = self.dev_data
        self.dev_set = (
            encode_pairs(dev_data, tokenizer, max_length, label2id) if dev_data is not None else None
        )
        return TrainSetup(
            dataset=train_set,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=self.options.batch_size,
            eval_dataset=self.dev_set,
        )

    def evaluate_dev(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run_dir: Path
    ) -> dict[str, float]:
        options = self.options
        evaluation = evaluate(model, tokenizer, self.dev_set, options.guide, options.eval_batch_size)
        write_jsonl(
            run_dir / "dev_predictions.jsonl",
            prediction_rows(self.dev_data, evaluation, model.config.id2label),
        )
        return evaluation.metrics

    def data_record(self, split: str, data: PairData) -> dict:
        return {
            "source": data.source,
            "layout": data.layout,
            "examples": len(data),
            "dropped": data.dropped,
            "sha256": source_sha256(data.source),
        }
