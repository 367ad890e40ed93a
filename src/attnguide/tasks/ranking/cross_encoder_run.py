"""A cross-encoder ranking run: the ``RankingRun`` of ``--task ranking`` (``--encoder cross``), a
reranker whose one output scores a (query, document) pair, trained pointwise or listwise; and
scoring and evaluating such a reranker: scores, rankings, ranking metrics and attention measures.
"""

from __future__ import annotations

import logging

import ir_measures
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...errors import AttnguideError, DataError
from ...guiding.config import GuideConfig
from ...models import load_model
from ...training.training_run import TrainSetup
from ..eval_pass import eval_pass
from . import ranking_losses
from .data import RankingData
from .encoding import EncodedPairs, encode_candidates
from .listwise_groups import ListwiseCollator, ListwiseGroups
from .ranking_metrics import ranking_metrics
from .ranking_run import RankingRun
from .trec_runs import RankingEvaluation, build_run

logger = logging.getLogger("attnguide")


@torch.no_grad()
def score_pairs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int = 64
) -> list[float]:
    """The model's single logit for every encoded pair, in dataset order, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    columns = [c for c in dataset.column_names if c != "labels"]
    loader = DataLoader(
        dataset.select_columns(columns), batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    scores: list[float] = []
    for batch in tqdm(loader, desc="scoring", leave=False, disable=not logger.isEnabledFor(logging.INFO)):
        scores += model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float().tolist()
    return scores


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
    an eval pass over the same pairs (``tasks.eval_pass.eval_pass``), the guiding losses and attention
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


class CrossEncoderRankingRun(RankingRun):
    """Reranking: (query, document) pairs scored by one output, trained pointwise or listwise.

    Listwise negatives are drawn per epoch (``ListwiseGroups``), so a resumed run of either kind
    matches an uninterrupted one.
    """

    adapter_task_type = "SEQ_CLS"

    def read(self) -> list[str]:
        self._read_data()
        train_data = self.train_data
        if all(train_data.relevance(c) > 0 for c in train_data.candidates):
            raise DataError(
                train_data.source,
                "every candidate is relevant, so a reranker has nothing to rank them above; give "
                "irrelevant candidates too (with the trec layout, a candidate run: --train-run)",
            )
        return ["relevance"]  # one output: the pair's score

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        self.model_name = name  # the starting model, measured zero-shot where it is a bi-encoder
        return load_model(name, labels)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        options, train_data = self.options, self.train_data
        listwise = options.ranking_loss == "listwise"
        self.train_pairs = encode_candidates(
            train_data, tokenizer, options.max_length, with_labels=not listwise
        )
        self.dev_pairs = (
            encode_candidates(self.dev_data, tokenizer, options.max_length)
            if self.dev_data is not None
            else None
        )
        setup = TrainSetup(
            dataset=self.train_pairs.dataset,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=options.batch_size,
            compute_loss=getattr(ranking_losses, f"{options.ranking_loss}_loss"),
            arguments={
                "remove_unused_columns": False,  # listwise items are groups, not model inputs
                "average_tokens_across_devices": False,  # the ranking losses are per-batch means
            },
        )
        if listwise:
            setup.dataset = ListwiseGroups(
                self.train_pairs.dataset, train_data, options.negatives, options.seed
            )
            if len(setup.dataset) == 0:
                raise AttnguideError(
                    f"{train_data.source}: no query has both relevant and irrelevant candidates"
                )
            setup.collator = ListwiseCollator(tokenizer)
            setup.batch_size = max(1, options.batch_size // (1 + options.negatives))
            logger.info(
                "listwise batches of %d groups (%d pairs)",
                setup.batch_size,
                setup.batch_size * (1 + options.negatives),
            )
        return setup

    def rank_dev(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> RankingEvaluation:
        options = self.options
        return evaluate_ranking(
            model,
            tokenizer,
            self.dev_data,
            self.dev_pairs,
            options.guide,
            options.eval_batch_size,
            options.keep_unanswerable,
        )

    def truncated_pairs(self, split: str) -> int:
        return (self.train_pairs if split == "train" else self.dev_pairs).truncated

    def versions(self) -> dict[str, str]:
        return {"ir-measures": ir_measures.__version__}
