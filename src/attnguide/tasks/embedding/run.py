"""An embedding training run (the ``TrainingRun`` that ``run_training`` drives, training with
sentence-transformers' own trainer and losses, guided by ``GuidedLoss``), and evaluating an
embedding model on pairs with a score: the Spearman and Pearson correlations of their cosine
similarities with the scores (sentence-transformers' embedding-similarity evaluator), and the
attention measures of its transformer over the same sentences."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ...errors import AttnguideError
from ...files import write_jsonl
from ...guiding.config import GuideConfig
from ...models import load_sentence_transformer
from ...training.sentence_transformers import IN_BATCH_NEGATIVES, sentence_transformer_trainer
from ...training.training_run import TrainingRun, TrainSetup, source_sha256
from ..eval_pass import bi_encoder_measures
from ..pairs.cosine_similarity import similarity_metrics, zero_shot_similarity
from ..pairs.scored_pairs import ScoredPairs, check_scores_vary
from .data import EmbeddingData, TextRows, read_embedding_data

if TYPE_CHECKING:
    from .task import EmbeddingOptions

logger = logging.getLogger("attnguide")


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


class EmbeddingRun(TrainingRun):
    """A bi-encoder: each text embedded on its own, trained so that cosine similarities follow the
    data (CoSENT, cosine similarity or multiple-negatives ranking loss)."""

    name = "embedding"
    adapter_task_type = "FEATURE_EXTRACTION"
    train_losses_with_dev = True
    options: EmbeddingOptions

    @cached_property
    def _zero_shot(self) -> dict[str, float]:
        """The starting model's dev figures, measured once per run (``tune`` evaluates every epoch)."""
        o = self.options
        return zero_shot_similarity(self.model_name, self.dev_data, o.max_length, o.eval_batch_size)

    def read(self) -> list[str]:
        options = self.options
        read = (options.format, options.columns, options.label_range)
        self.train_data = read_embedding_data(options.train, *read, options.positive_label)
        self.dev_data = read_embedding_data(options.dev, *read) if options.dev else None  # pairs with a score
        if self.dev_data is not None and not isinstance(self.dev_data, ScoredPairs):
            raise AttnguideError(
                f"{options.dev}: --task embedding is evaluated on pairs with a score (by the library's "
                "embedding-similarity evaluator), not on (anchor, positive) rows"
            )
        if self.dev_data is not None:
            check_scores_vary(self.dev_data)
        self.loss_name = self._loss_name()
        logger.info(
            "training data: %s, %d rows, %s loss", options.train, len(self.train_data), self.loss_name
        )
        return []

    def _loss_name(self) -> str:
        chosen, rows = self.options.embedding_loss, isinstance(self.train_data, TextRows)
        if chosen == "auto":
            return "mnrl" if rows else "cosent"
        if rows != (chosen == "mnrl"):
            needs = "(anchor, positive) rows" if chosen == "mnrl" else "pairs with a score"
            raise AttnguideError(
                f"--embedding-loss {chosen} needs {needs}; {self.options.train} has the other kind"
            )
        if chosen == "cosine" and not all(0 <= s <= 1 for s in self._scores(self.train_data)):
            raise AttnguideError(
                "--embedding-loss cosine compares cosines with scores from 0 to 1: give --label-range"
            )
        return chosen

    def load_model(self, name: str, labels: list[str]) -> nn.Module:
        self.model_name = name  # the starting model, measured zero-shot beside the fine-tuned one
        return load_sentence_transformer(name, self.options.max_length)

    def _scores(self, data: ScoredPairs) -> list[float]:
        if self.options.label_range is None:
            return data.scores
        low, high = self.options.label_range
        return [(score - low) / (high - low) for score in data.scores]

    def _dataset(self, data: EmbeddingData) -> Dataset:
        if isinstance(data, TextRows):
            return Dataset.from_dict(data.columns)
        pairs = data.pairs
        return Dataset.from_dict(
            {"sentence1": pairs.text_a, "sentence2": pairs.text_b, "score": self._scores(data)}
        )

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        from sentence_transformers import SentenceTransformerTrainingArguments

        return TrainSetup(
            dataset=self._dataset(self.train_data),
            collator=None,
            batch_size=self.options.batch_size,
            eval_dataset=self._dataset(self.dev_data) if self.dev_data is not None else None,
            arguments=IN_BATCH_NEGATIVES if self.loss_name == "mnrl" else {},
            arguments_class=SentenceTransformerTrainingArguments,
            trainer=self._trainer,
        )

    def _trainer(self, model: nn.Module, args: Any, setup: TrainSetup, **_: Any) -> Any:
        from sentence_transformers.sentence_transformer import losses

        inner = {"cosent": losses.CoSENTLoss, "cosine": losses.CosineSimilarityLoss}.get(
            self.loss_name, losses.MultipleNegativesRankingLoss
        )(model)
        return sentence_transformer_trainer(model, args, setup, inner, self.options.guide)

    def evaluate_dev(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> dict:
        options = self.options
        evaluation = evaluate_embedding(
            model, tokenizer, self.dev_data, options.max_length, options.guide, options.eval_batch_size
        )
        write_jsonl(run_dir / "dev_predictions.jsonl", prediction_rows(self.dev_data, evaluation))
        return {**evaluation.metrics, **self._zero_shot}

    def record(self) -> dict:
        return {**super().record(), "loss": self.loss_name}

    def data_record(self, split: str, data: EmbeddingData) -> dict:
        source = data.source if isinstance(data, TextRows) else data.pairs.source
        layout = data.layout if isinstance(data, TextRows) else data.pairs.layout
        return {"source": source, "layout": layout, "examples": len(data), "sha256": source_sha256(source)}

    def versions(self) -> dict[str, str]:
        import sentence_transformers

        return {"sentence-transformers": sentence_transformers.__version__}
