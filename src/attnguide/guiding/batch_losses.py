"""The guiding losses of a batch, in the scope a ``GuideConfig`` asks for, and their weighted sum.

Profile guides (MDG, PDG) work on the guided heads' attention profiles; map guides (pattern
guidance, disagreement) on the guided layers' full attention maps, which only the
output-attentions capture provides. Which guide is which, and its loss, come from the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import torch

from .builtin_guides import MapInputs
from .config import GuideConfig
from .registry import GUIDES


def guide_losses(
    profiles: torch.Tensor,
    mask: torch.Tensor,
    config: GuideConfig,
    heads_per_layer: int,
    names: Iterable[str] | None = None,
    maps: MapInputs | None = None,
    tokens: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Each named guide's loss (default: the config's guides).

    ``profiles`` is [batch, layers·heads, positions]. In ``per-layer`` scope the heads of each layer
    form their own problem for the profile guides: the profiles become [batch·layers, heads,
    positions] and the losses average over sequences and layers alike. Map guides are per layer
    by definition and need ``maps``; ``tokens`` holds, by guide name, what a map guide's row makes
    of the tokenizer (``Guide.tokens``), given to its loss as ``MapInputs.tokens``.
    """
    guides = [GUIDES[name] for name in (config.guides if names is None else names)]
    profile_mask = mask
    if config.scope == "per-layer" and any(not g.needs_maps for g in guides):
        batch, rows, positions = profiles.shape
        layers = rows // heads_per_layer
        profiles = profiles.reshape(batch * layers, heads_per_layer, positions)
        profile_mask = mask.repeat_interleave(layers, dim=0)
    losses = {}
    for guide in guides:
        if not guide.needs_maps:
            losses[guide.name] = guide.compute(profiles, profile_mask, config)
        elif maps is None:
            raise ValueError(f"the {guide.name} guide needs attention maps (the output-attentions capture)")
        else:
            inputs = (
                maps
                if tokens is None or guide.name not in tokens
                else replace(maps, tokens=tokens[guide.name])
            )
            losses[guide.name] = guide.compute(inputs, mask, config)
    return losses


def weighted_sum(losses: dict[str, torch.Tensor], config: GuideConfig, step: int) -> torch.Tensor:
    """``ramp(step) · Σ weight(g) · loss(g)`` over the given losses."""
    total = sum(config.weight(name) * value for name, value in losses.items())
    return total * config.ramp(step)


def tokenizer_inputs(names: Iterable[str], tokenizer: Any) -> dict[str, Any]:
    """What each named guide's row makes of ``tokenizer`` (``Guide.tokens``), by name, for the guides
    that need it (``Guide.from_tokenizer``); ``guide_losses`` takes it as ``tokens``."""
    return {name: GUIDES[name].tokens(tokenizer) for name in names if GUIDES[name].from_tokenizer is not None}
