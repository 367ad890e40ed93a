"""The guiding losses of a batch, in the scope a ``GuideConfig`` asks for.

Profile guides (MDG, PDG) work on the guided heads' attention profiles; map guides (pattern
guidance, disagreement) on the guided layers' full attention maps, which only the
output-attentions capture provides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from .config import GUIDES, MAP_GUIDES, PROFILE_GUIDES, GuideConfig
from .losses import disagreement_loss, map_discrimination_loss, pattern_decorrelation_loss, pattern_loss
from .patterns import PatternTokens, parse_spread, pattern_targets


@dataclass
class MapInputs:
    """What map guides need: the guided layers' maps [batch, heads, query, key], and for pattern
    guidance the batch's token ids and which tokens are delimiters and periods."""

    maps: Sequence[torch.Tensor]
    input_ids: torch.Tensor | None = None
    tokens: PatternTokens | None = None


def _pattern(inputs: MapInputs, mask: torch.Tensor, config: GuideConfig) -> torch.Tensor:
    if inputs.input_ids is None or inputs.tokens is None:
        raise ValueError("pattern guidance needs the batch's input_ids and the tokenizer's pattern tokens")
    heads = inputs.maps[0].shape[1]
    spread = parse_spread(config.pattern_spread, heads)
    chosen = [h for h, name in enumerate(spread) if name is not None]
    if not chosen:
        raise ValueError(f"pattern spread {config.pattern_spread!r} assigns no head")
    targets = pattern_targets(inputs.input_ids, mask, inputs.tokens.delimiters, inputs.tokens.periods)
    target = torch.stack([targets[spread[h]][0] for h in chosen], dim=1)
    rows = torch.stack([targets[spread[h]][1] for h in chosen], dim=1)
    maps = torch.cat([layer[:, chosen] for layer in inputs.maps], dim=1)
    repeat = len(inputs.maps)
    return pattern_loss(maps, target.repeat(1, repeat, 1, 1), rows.repeat(1, repeat, 1), mask)


def _disagreement(inputs: MapInputs, mask: torch.Tensor, config: GuideConfig) -> torch.Tensor:
    return torch.stack([disagreement_loss(layer, mask) for layer in inputs.maps]).mean()


ProfileLoss = Callable[[torch.Tensor, torch.Tensor, GuideConfig], torch.Tensor]
MapLoss = Callable[[MapInputs, torch.Tensor, GuideConfig], torch.Tensor]

LOSSES: dict[str, ProfileLoss | MapLoss] = {
    "mdg": lambda profiles, mask, config: map_discrimination_loss(profiles, mask, config.temperature),
    "pdg": lambda profiles, mask, config: pattern_decorrelation_loss(profiles, mask),
    "pattern": _pattern,
    "disagreement": _disagreement,
}


def guide_losses(
    profiles: torch.Tensor,
    mask: torch.Tensor,
    config: GuideConfig,
    heads_per_layer: int,
    names: Iterable[str] | None = None,
    maps: MapInputs | None = None,
) -> dict[str, torch.Tensor]:
    """Each named guide's loss (default: the config's guides).

    ``profiles`` is [batch, layers·heads, positions]. In ``per-layer`` scope the heads of each layer
    form their own problem for the profile guides: the profiles become [batch·layers, heads,
    positions] and the losses average over sequences and layers alike. Map guides are per layer
    by definition and need ``maps``.
    """
    names = tuple(config.guides if names is None else names)
    if config.scope == "per-layer" and any(n in PROFILE_GUIDES for n in names):
        batch, rows, positions = profiles.shape
        layers = rows // heads_per_layer
        profiles = profiles.reshape(batch * layers, heads_per_layer, positions)
        profile_mask = mask.repeat_interleave(layers, dim=0)
    else:
        profile_mask = mask
    losses = {}
    for name in names:
        if name in MAP_GUIDES:
            if maps is None:
                raise ValueError(f"the {name} guide needs attention maps (the output-attentions capture)")
            losses[name] = LOSSES[name](maps, mask, config)
        else:
            losses[name] = LOSSES[name](profiles, profile_mask, config)
    return losses


def weighted_sum(losses: dict[str, torch.Tensor], config: GuideConfig, step: int) -> torch.Tensor:
    """``ramp(step) · Σ weight(g) · loss(g)`` over the given losses."""
    total = sum(config.weight(name) * value for name, value in losses.items())
    return total * config.ramp(step)


assert set(LOSSES) == set(GUIDES), "every guide named in config.GUIDES needs a loss here"
