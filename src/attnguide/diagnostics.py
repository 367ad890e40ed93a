"""Numbers that describe how attention is spread, computed from profiles [batch, heads, positions]."""

from __future__ import annotations

import torch

from .losses import normalize_rows


def head_similarity(profiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs of distinct heads, per sequence: [batch]."""
    unit = normalize_rows(profiles.float() * mask[:, None, :].float())
    heads = unit.shape[1]
    gram = unit @ unit.transpose(1, 2)
    off_diagonal = gram.sum((1, 2)) - torch.diagonal(gram, dim1=1, dim2=2).sum(-1)
    return off_diagonal / (heads * (heads - 1))


def attention_share(profiles: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Share of each sequence's attention that goes to the marked positions, averaged over heads: [batch]."""
    return (profiles.float() * positions[:, None, :].float()).sum(-1).mean(-1)
