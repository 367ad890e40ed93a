"""Evaluating a token classifier: a tag for every word, entity-level metrics, attention measures."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import DataCollatorForTokenClassification, PreTrainedModel, PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ..evaluation import eval_pass
from .data import TaggedSentences
from .encoding import EncodedWindows, words_from_windows
from .metrics import entity_metrics


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
