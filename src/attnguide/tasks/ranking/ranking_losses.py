"""Ranking losses on a cross-encoder's scores, as ``compute_loss_func`` of the Trainer.

Both are means over the batch, as ``GuidedTrainer`` declares its losses; guiding adds to either.
``task.RANKING_LOSSES`` names them: loss ``NAME`` is the function ``NAME_loss`` here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pointwise_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Binary cross-entropy of each pair's score (its logit) against its 0/1 relevance."""
    return F.binary_cross_entropy_with_logits(outputs.logits[:, 0].float(), labels.float())


def listwise_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Softmax cross-entropy over each group's scores: −log of the relevant document's share.

    ``labels`` [groups, 1+K] marks the relevant document of each group; the scores come in the
    same order, group by group.
    """
    scores = outputs.logits[:, 0].float().view(labels.shape)
    return F.cross_entropy(scores, labels / labels.sum(-1, keepdim=True))
