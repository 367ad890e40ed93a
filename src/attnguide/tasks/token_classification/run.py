"""A token classification training run (the ``TrainingRun`` that ``run_training`` drives) and
evaluating a token classifier: a tag for every word, entity-level metrics (seqeval, CoNLL's
conlleval definitions) and the attention measures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import DataCollatorForTokenClassification, PreTrainedModel, PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ...models import load_model
from ...training.training_run import TrainingRun, TrainSetup, source_sha256
from ..eval_pass import eval_pass
from .data import TaggedSentences, load_hf_tagged, read_tagged, tag_list, write_predictions
from .encoding import EncodedWindows, encode_windows, words_from_windows

if TYPE_CHECKING:
    from .task import TokenClassificationOptions

logger = logging.getLogger("attnguide")


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """``precision``, ``recall`` and ``f1`` over whole entity mentions (micro over entities; a
    mention counts only with its exact span and type), ``accuracy`` over words, and the same per
    entity type under ``per_type`` (with each type's ``support``, the number of gold mentions)."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {
        name: {
            key.replace("f1-score", "f1"): int(value) if key == "support" else float(value)
            for key, value in values.items()
        }
        for name, values in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "per_type": per_type,
    }


@dataclass
class TagEvaluation:
    """The predicted tag of every word of every sentence, and the metrics."""

    predictions: list[list[str]]
    metrics: dict


def evaluate_tags(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TaggedSentences,
    windows: EncodedWindows,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
) -> TagEvaluation:
    """Predict every window, map the predictions back to words (``words_from_windows``) and measure
    them against the gold tags: ``entity_metrics`` over every word of every sentence, how many
    sentences were split into windows and how many words had no sub-token, and the attention
    measures of the same pass."""
    predicted: list[list[int]] = []
    measures: dict[str, float] = {}
    unlabelled = windows.dataset.remove_columns([c for c in ("labels",) if c in windows.dataset.column_names])
    collator = DataCollatorForTokenClassification(tokenizer)
    for logits, _ in eval_pass(model, tokenizer, unlabelled, measures, guide_config, batch_size, collator):
        predicted += logits.argmax(-1).tolist()
    tags = words_from_windows(windows, data, predicted, model.config.id2label)
    metrics = entity_metrics(data.tags, tags)
    metrics.update(
        sentences=len(data),
        words=data.word_count,
        sentences_split=windows.split_sentences,
        words_without_subwords=windows.words_without_subwords,
        **measures,
    )
    return TagEvaluation(tags, metrics)


class TokenClassificationRun(TrainingRun):
    """Tagging: a tag per word from the tag of its first sub-token; entity F1 on dev."""

    name = "token-classification"
    adapter_task_type = "TOKEN_CLS"
    options: TokenClassificationOptions

    def read_file(self, path: str) -> TaggedSentences:
        return read_tagged(path, self.options.format, self.options.columns)

    def read_dataset(self, name: str, split: str) -> TaggedSentences:
        return load_hf_tagged(name, split, self.options.columns)

    def read(self) -> list[str]:
        options = self.options
        self.train_data = self.read_split(options.train, options.train_split)
        self.dev_data = self.read_split(options.dev, options.dev_split)
        self.labels = tag_list(self.train_data, self.dev_data)
        logger.info(
            "training data: %s, %d sentences, %d words, layout %s, tags %s",
            self.train_data.source,
            len(self.train_data),
            self.train_data.word_count,
            self.train_data.layout,
            ", ".join(self.labels),
        )
        return self.labels

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        return load_model(name, labels, head="token")

    def _windows(self, data: TaggedSentences, tokenizer, label2id) -> EncodedWindows:
        options = self.options
        return encode_windows(data, tokenizer, options.max_length, label2id, options.stride)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        self.train_windows = self._windows(self.train_data, tokenizer, label2id)
        self.dev_windows = self._windows(self.dev_data, tokenizer, label2id) if self.dev_data else None
        return TrainSetup(
            dataset=self.train_windows.dataset,
            collator=DataCollatorForTokenClassification(tokenizer),
            batch_size=self.options.batch_size,
            eval_dataset=self.dev_windows.dataset if self.dev_windows else None,
        )

    def evaluate_dev(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> dict:
        options = self.options
        evaluation = evaluate_tags(
            model, tokenizer, self.dev_data, self.dev_windows, options.guide, options.eval_batch_size
        )
        suffix = Path(self.dev_data.source).suffix if self.dev_data.layout != "hf" else ".jsonl"
        write_predictions(
            self.dev_data, evaluation.predictions, run_dir / f"dev_predictions{suffix or '.txt'}"
        )
        return evaluation.metrics

    def data_record(self, split: str, data: TaggedSentences) -> dict:
        windows = self.train_windows if split == "train" else self.dev_windows
        return {
            "source": data.source,
            "layout": data.layout,
            "sentences": len(data),
            "words": data.word_count,
            "sentences_split": windows.split_sentences,
            "words_without_subwords": windows.words_without_subwords,
            "sha256": source_sha256(data.source),
        }

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"seqeval": version("seqeval")}
