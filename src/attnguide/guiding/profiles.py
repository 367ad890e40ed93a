"""Attention profiles: one vector per guided head, the input of every guiding loss.

The default ``received`` profile of a head is the attention each key position receives, averaged
over the valid queries (docs/METHOD.md). ``released-code`` reproduces the authors' released code, a mean
over keys that is the constant 1/n for every head and every input: it is offered only so that the
released behaviour can be reproduced, and it warns that it carries no guiding signal.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .config import PROFILE_KINDS

_released_code_warned = False


def received_profile(attention: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Attention received per key, averaged over valid queries: [B, H, q, k] -> [B, H, k] in float32."""
    m = attention_mask.to(device=attention.device, dtype=torch.float32)
    received = torch.einsum("bhqk,bq->bhk", attention.float(), m) / m.sum(-1).clamp(min=1)[:, None, None]
    return received * m[:, None, :]


def _released_code_profile(attention: torch.Tensor) -> torch.Tensor:
    """The released code's ``torch.mean(attentions, -1)``: a mean over keys, 1/n for every row."""
    global _released_code_warned
    if not _released_code_warned:
        warnings.warn(
            "profile kind 'released-code' averages attention over keys, which is 1/n for every head and "
            "input: it reproduces the released code and carries no guiding signal",
            UserWarning,
            stacklevel=3,
        )
        _released_code_warned = True
    return attention.float().mean(-1)


def attention_profiles(
    attentions: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
    layers: Sequence[int] | None = None,
    kind: str = "received",
) -> torch.Tensor:
    """Turn the per-layer attentions of ``output_attentions=True`` into [batch, guided heads, positions].

    ``attentions`` holds one [batch, heads, query, key] tensor per layer; ``layers`` picks the
    guided ones (indices into that tuple, negative allowed; None means all). Heads are stacked
    layer by layer, so head ``i`` of layer ``layers[j]`` is row ``j * heads + i``.
    """
    if kind not in PROFILE_KINDS:
        raise ValueError(f"unknown profile kind {kind!r}; expected one of {', '.join(PROFILE_KINDS)}")
    if not attentions:
        raise ValueError("no attention maps were given: the model returned none")
    chosen = [attentions[i] for i in layers] if layers is not None else list(attentions)
    if kind == "received":
        return torch.cat([received_profile(a, attention_mask) for a in chosen], dim=1)
    return torch.cat([_released_code_profile(a) for a in chosen], dim=1)
