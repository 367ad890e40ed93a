"""Attention profiles next to the fast attention kernel, without keeping any n × n map alive.

``received_attention`` computes the SPEC profile of every head (attention each key receives,
averaged over valid queries, before dropout) from the queries, keys and mask of one attention call.
It loops over chunks of queries, so at most one chunk of scores exists at a time, and recomputes
the chunks in the backward pass instead of saving them: the only tensors it keeps for the backward
are the queries and keys, which the attention kernel keeps anyway.

``guided_sdpa_attention`` is registered with transformers' attention interface under
``ATTENTION_NAME``: it returns PyTorch SDPA's output exactly as the ``sdpa`` implementation does and,
when the model's forward call carries a ``ProfileRecorder`` (keyword ``RECORDER_KWARG``), also
hands the guided layers' queries and keys to it. Attention calls are numbered in the order they
happen, which is the layer order of an encoder; ALBERT and DistilBERT modules have no layer index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from .errors import AttentionCaptureError

ATTENTION_NAME = "attnguide"
RECORDER_KWARG = "attnguide_recorder"
CHUNK_ELEMENTS = 1 << 22
"""Scores held per query chunk (batch · heads · chunk · keys): 16 MiB in float32."""

_UNSUPPORTED_KWARGS = ("position_bias", "softcap", "sliding_window", "s_aux")


def _chunk_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    start: int,
    stop: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """softmax(Q[start:stop] Kᵀ · scaling + mask) in ``dtype``: [batch, heads, stop - start, keys].

    ``query`` and ``key`` are contiguous [batch, heads, positions, head size], so that the batched
    product needs no copies; ``mask`` is the 4-D mask given to attention functions: boolean
    (True = attend), additive, or None.
    """
    scores = torch.matmul(query[:, :, start:stop] * scaling, key.transpose(-1, -2)).to(dtype)
    if mask is not None:
        rows = mask[..., start:stop, :] if mask.shape[-2] > 1 else mask
        if rows.dtype == torch.bool:
            scores.masked_fill_(~rows, torch.finfo(dtype).min)
        else:
            scores.add_(rows)
    return torch.softmax(scores, dim=-1)


def _chunk_size(query: torch.Tensor, key: torch.Tensor, elements: int) -> int:
    batch, heads, _, _ = query.shape
    return max(1, elements // (batch * heads * key.shape[-2]))


class ReceivedAttention(torch.autograd.Function):
    """Σ_q w[b, q] · softmax(Q Kᵀ · scaling + bias)[b, h, q, k], accumulated over query chunks.

    Forward and backward each rebuild one chunk of probabilities at a time. With ``G`` the
    gradient of the output, the score gradient of a chunk is ``w_q · P ⊙ (G_k − Σ_k' P G_k')``
    (softmax backward of ``dP = w_q G_k``); the factor ``w_q · scaling`` is applied to the
    chunk's query rows and query gradient rows rather than to the scores.
    """

    @staticmethod
    def forward(ctx, query, key, mask, weights, scaling, chunk_elements):
        dtype = torch.promote_types(query.dtype, torch.float32)
        batch, heads, queries, _ = query.shape
        chunk = _chunk_size(query, key, chunk_elements)
        q, k = query.contiguous(), key.contiguous()
        profile = query.new_zeros((batch, heads, key.shape[-2]), dtype=dtype)
        w = weights.to(dtype)[:, None, None, :].expand(batch, heads, 1, queries)
        for start in range(0, queries, chunk):
            stop = min(start + chunk, queries)
            probs = _chunk_probabilities(q, k, mask, scaling, start, stop, dtype)
            profile += torch.matmul(w[..., start:stop], probs).squeeze(-2)
        ctx.save_for_backward(query, key, mask, weights)
        ctx.scaling, ctx.chunk = scaling, chunk
        return profile

    @staticmethod
    def backward(ctx, grad_profile):
        query, key, mask, weights = ctx.saved_tensors
        dtype = grad_profile.dtype
        q, k = query.contiguous(), key.contiguous()
        g = grad_profile[:, :, None, :]
        w = (weights.to(query.dtype) * ctx.scaling)[:, None, :, None]
        grad_query = torch.empty_like(q) if ctx.needs_input_grad[0] else None
        grad_key = torch.zeros_like(k, dtype=dtype) if ctx.needs_input_grad[1] else None
        for start in range(0, q.shape[-2], ctx.chunk):
            stop = min(start + ctx.chunk, q.shape[-2])
            probs = _chunk_probabilities(q, k, mask, ctx.scaling, start, stop, dtype)
            received = torch.matmul(probs, grad_profile[..., None])
            grad_scores = (g - received).mul_(probs).to(query.dtype)
            if grad_query is not None:
                torch.matmul(grad_scores, k, out=grad_query[:, :, start:stop]).mul_(w[:, :, start:stop])
            if grad_key is not None:
                grad_key += torch.matmul(
                    grad_scores.transpose(-1, -2), q[:, :, start:stop] * w[:, :, start:stop]
                )
        grad_key = grad_key.to(key.dtype) if grad_key is not None else None
        return grad_query, grad_key, None, None, None, None


def query_weights(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``m[b, q] / Σ_q m[b, q]`` from a 0/1 mask [batch, positions] (0 for an all-padding sequence)."""
    m = attention_mask.to(dtype)
    return m / m.sum(-1, keepdim=True).clamp(min=1)


def received_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Per-head attention received by each key, [batch, heads, keys] in float32 (or float64 input).

    ``query``/``key`` are [batch, heads, positions, head size]; ``mask`` is the 4-D mask given to
    attention functions (boolean with True = attend, or additive; None for none); ``weights``
    [batch, queries] weighs the queries (see ``query_weights``); ``scaling`` defaults to 1/√d.
    """
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return ReceivedAttention.apply(query, key, mask, weights, float(scaling), chunk_elements)


class ProfileRecorder:
    """Collects the received-attention profiles of the guided layers during one forward call.

    Give it to the model's forward call as ``RECORDER_KWARG``; ``calls`` counts every attention
    call, so that a model whose attention calls do not match its layers can be detected.
    """

    def __init__(
        self,
        layers: Sequence[int],
        attention_mask: torch.Tensor | None = None,
        chunk_elements: int = CHUNK_ELEMENTS,
    ) -> None:
        self.layers = frozenset(layers)
        self.attention_mask = attention_mask
        self.chunk_elements = chunk_elements
        self.calls = 0
        self.profiles: list[torch.Tensor] = []
        self._weights: torch.Tensor | None = None

    def next_layer_is_guided(
        self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, kwargs: dict
    ) -> bool:
        """Count one attention call; True if its layer is guided (checked to be one this route handles)."""
        layer = self.calls
        self.calls += 1
        if layer not in self.layers:
            return False
        unsupported = [name for name in _UNSUPPORTED_KWARGS if kwargs.get(name) is not None]
        if unsupported or getattr(module, "is_causal", False) or query.shape[1] != key.shape[1]:
            raise AttentionCaptureError(
                f"{type(module).__name__}: the efficient capture handles plain bidirectional "
                f"multi-head attention only (found {unsupported or 'causal or grouped attention'}); "
                "use capture='output-attentions'"
            )
        return True

    def query_weights(self, query: torch.Tensor) -> torch.Tensor:
        """The weight of each query in the profile average [batch, queries], computed once per forward."""
        if self._weights is None:
            valid = self.attention_mask
            if valid is None:
                valid = torch.ones(query.shape[0], query.shape[-2])
            self._weights = query_weights(valid.to(query.device))
        return self._weights


def math_attention_with_profile(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float,
    dropout: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output [batch, positions, heads, head size] and profile, from one probability map.

    This is what PyTorch's SDPA does on the CPU when dropout is on (it has no fused kernel for it
    there and falls back to its math kernel, which keeps the map for the backward pass anyway), so
    taking the profile from that same map costs one reduction and keeps no extra map.
    """
    probs = _chunk_probabilities(query, key, mask, scaling, 0, query.shape[-2], query.dtype)
    profile = torch.einsum("bhqk,bq->bhk", probs.float(), weights)
    output = torch.matmul(torch.nn.functional.dropout(probs, p=dropout, training=True), value)
    return output.transpose(1, 2).contiguous(), profile


def guided_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The ``sdpa`` attention function, plus profiles for the recorder the forward call carries.

    A guided layer's profile comes from ``received_attention`` beside SDPA's output, except on the
    CPU with dropout on, where both come from ``math_attention_with_profile``.
    """
    recorder: ProfileRecorder | None = kwargs.pop(RECORDER_KWARG, None)
    if recorder is None or not recorder.next_layer_is_guided(module, query, key, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scaling = kwargs.get("scaling")
    scaling = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    weights = recorder.query_weights(query)
    dropout = kwargs.get("dropout", 0.0)
    if dropout > 0 and query.device.type == "cpu":
        output, profile = math_attention_with_profile(
            query, key, value, attention_mask, weights, scaling, dropout
        )
    else:
        profile = received_attention(query, key, attention_mask, weights, scaling, recorder.chunk_elements)
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    recorder.profiles.append(profile)
    return output, None


AttentionInterface.register(ATTENTION_NAME, guided_sdpa_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
