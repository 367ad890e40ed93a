"""Guiding losses over the profiles of a batch, in the scope a ``GuideConfig`` asks for."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .config import GUIDES, GuideConfig
from .losses import map_discrimination_loss, pattern_decorrelation_loss

LossFn = Callable[[torch.Tensor, torch.Tensor, GuideConfig], torch.Tensor]

LOSSES: dict[str, LossFn] = {
    "mdg": lambda profiles, mask, config: map_discrimination_loss(profiles, mask, config.temperature),
    "pdg": lambda profiles, mask, config: pattern_decorrelation_loss(profiles, mask),
}


def guide_losses(
    profiles: torch.Tensor,
    mask: torch.Tensor,
    config: GuideConfig,
    heads_per_layer: int,
    names: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Each named guide's loss (default: the config's guides) on [batch, layers·heads, positions].

    In ``per-layer`` scope the heads of each layer form their own problem: the profiles become
    [batch·layers, heads, positions] and the losses average over sequences and layers alike.
    """
    if config.scope == "per-layer":
        batch, rows, positions = profiles.shape
        layers = rows // heads_per_layer
        profiles = profiles.reshape(batch * layers, heads_per_layer, positions)
        mask = mask.repeat_interleave(layers, dim=0)
    return {
        name: LOSSES[name](profiles, mask, config) for name in (config.guides if names is None else names)
    }


def weighted_sum(losses: dict[str, torch.Tensor], config: GuideConfig, step: int) -> torch.Tensor:
    """``ramp(step) · Σ weight(g) · loss(g)`` over the given losses."""
    total = sum(config.weight(name) * value for name, value in losses.items())
    return total * config.ramp(step)


assert set(LOSSES) == set(GUIDES), "every guide named in config.GUIDES needs a loss here"
