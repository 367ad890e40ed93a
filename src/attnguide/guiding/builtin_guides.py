"""The built-in guides' losses in the registry's calling convention (``registry.Guide``).

Profile guides take ``(profiles, mask, config)``, map guides ``(MapInputs, mask, config)``; the
mathematics is in ``attention_losses`` and ``patterns``, defined in ``docs/METHOD.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .attention_losses import (
    disagreement_loss,
    map_discrimination_loss,
    pattern_decorrelation_loss,
    pattern_loss,
)
from .pattern_spread import parse_spread
from .patterns import pattern_targets


@dataclass
class MapInputs:
    """What map guides need: the guided layers' maps [batch, heads, query, key], the batch's token
    ids, and what the guide's row makes of the tokenizer (``Guide.from_tokenizer``; for pattern
    guidance which tokens are delimiters and periods)."""

    maps: Sequence[torch.Tensor]
    input_ids: torch.Tensor | None = None
    tokens: Any = None


def mdg(profiles: torch.Tensor, mask: torch.Tensor, config) -> torch.Tensor:
    """MDG at the config's temperature."""
    return map_discrimination_loss(profiles, mask, config.temperature)


def pdg(profiles: torch.Tensor, mask: torch.Tensor, config) -> torch.Tensor:
    """PDG."""
    return pattern_decorrelation_loss(profiles, mask)


def pattern(inputs: MapInputs, mask: torch.Tensor, config) -> torch.Tensor:
    """Pattern guidance of the heads the config's spread assigns, in every guided layer."""
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


def disagreement(inputs: MapInputs, mask: torch.Tensor, config) -> torch.Tensor:
    """Disagreement regularisation, averaged over the guided layers."""
    return torch.stack([disagreement_loss(layer, mask) for layer in inputs.maps]).mean()
