"""Listwise training groups: one relevant document and K irrelevant ones of the same query."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from .data import RankingData

logger = logging.getLogger("attnguide")


class ListwiseGroups(torch.utils.data.Dataset):
    """One group per relevant candidate whose query has irrelevant candidates to contrast it with.

    Reading group ``i`` returns ``{"pairs": [relevant, K irrelevant]}`` (token features). The K
    irrelevant documents are drawn anew each epoch, from a generator seeded by (seed, epoch, i):
    runs are reproducible, and a run resumed mid-epoch draws what an uninterrupted one drew. Each
    epoch is announced through ``set_epoch`` (``callbacks.EpochToDataset``). A query with fewer
    than K irrelevant candidates gives them with repetition.
    """

    def __init__(self, encoded: Dataset, data: RankingData, negatives: int, seed: int) -> None:
        self.rows: list[dict[str, Any]] = encoded.remove_columns(
            [c for c in ("labels",) if c in encoded.column_names]
        ).to_list()
        self.negatives = negatives
        self.seed = seed
        positives: dict[str, list[int]] = {}
        irrelevant: dict[str, list[int]] = {}
        for i, candidate in enumerate(data.candidates):
            (positives if data.relevance(candidate) > 0 else irrelevant).setdefault(candidate.qid, []).append(
                i
            )
        self.groups = [
            (positive, irrelevant[qid])
            for qid, rows in positives.items()
            if qid in irrelevant
            for positive in rows
        ]
        self.skipped = sum(len(rows) for qid, rows in positives.items() if qid not in irrelevant)
        self.epoch = 0
        logger.info(
            "%s: %d listwise groups of 1 relevant + %d irrelevant documents (%d relevant documents skipped: "
            "their query has no irrelevant candidate)",
            data.source,
            len(self.groups),
            negatives,
            self.skipped,
        )

    def __len__(self) -> int:
        return len(self.groups)

    def set_epoch(self, epoch: int) -> None:
        """Draw the negatives of epoch ``epoch`` from now on."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, list[dict[str, Any]]]:
        positive, pool = self.groups[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        chosen = rng.choice(pool, size=self.negatives, replace=len(pool) < self.negatives)
        return {"pairs": [self.rows[positive], *(self.rows[int(j)] for j in chosen)]}


@dataclass
class ListwiseCollator:
    """Pads the groups of a batch into one batch of pairs; ``labels`` [groups, 1+K] marks the relevant one."""

    tokenizer: PreTrainedTokenizerBase

    def __call__(self, groups: list[dict[str, list[dict[str, Any]]]]) -> dict[str, torch.Tensor]:
        pairs = [pair for group in groups for pair in group["pairs"]]
        batch = DataCollatorWithPadding(self.tokenizer)(pairs)
        labels = torch.zeros(len(groups), len(groups[0]["pairs"]))
        labels[:, 0] = 1.0
        batch["labels"] = labels
        return batch
