"""A bi-encoder ranking run: the ``RankingRun`` of ``--task ranking --encoder bi``, a sentence-transformers
model fine-tuned with its own trainer on (query, relevant, irrelevant) rows and the
multiple-negatives ranking loss, guided through ``GuidedLoss``, ranked by cosine similarity."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from ...models import load_sentence_transformer
from ...training.sentence_transformers import IN_BATCH_NEGATIVES, sentence_transformer_trainer
from ...training.training_run import TrainSetup
from .cosine_ranking import evaluate_bi_encoder, triplets
from .ranking_run import RankingRun
from .trec_runs import RankingEvaluation

logger = logging.getLogger("attnguide")


class BiEncoderRankingRun(RankingRun):
    """Reranking with a bi-encoder: queries and documents embedded apart, ranked by cosine."""

    adapter_task_type = "FEATURE_EXTRACTION"

    def read(self) -> list[str]:
        self._read_data()
        return []

    def load_model(self, name: str, labels: list[str]) -> nn.Module:
        self.model_name = name
        return load_sentence_transformer(name, self.options.max_length)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        from sentence_transformers import SentenceTransformerTrainingArguments

        rows = triplets(self.train_data, self.options.seed)
        logger.info(
            "%d (query, relevant, irrelevant) rows for the multiple-negatives ranking loss", len(rows)
        )
        return TrainSetup(
            dataset=rows,
            collator=None,
            batch_size=self.options.batch_size,
            arguments=IN_BATCH_NEGATIVES,
            arguments_class=SentenceTransformerTrainingArguments,
            trainer=self._trainer,
        )

    def _trainer(self, model: nn.Module, args: Any, setup: TrainSetup, **_: Any) -> Any:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        return sentence_transformer_trainer(
            model, args, setup, MultipleNegativesRankingLoss(model), self.options.guide
        )

    def rank_dev(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> RankingEvaluation:
        options = self.options
        return evaluate_bi_encoder(
            model, tokenizer, self.dev_data, options.max_length, options.guide, options.eval_batch_size,
            options.keep_unanswerable,
        )  # fmt: skip

    def record(self) -> dict:
        return {**super().record(), "encoder": "bi"}

    def versions(self) -> dict[str, str]:
        import sentence_transformers

        return {"sentence-transformers": sentence_transformers.__version__}
