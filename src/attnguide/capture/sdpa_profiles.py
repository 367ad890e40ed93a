"""Attention output and profile from one call: the profile beside PyTorch's SDPA.

Without attention dropout the output and the profile come together, and the gradients of both from
one backward pass of the attention kernel on heads widened by a column: on the CPU through the
flash kernel's own operators, whose log-sum-exp turns each block of the profile into a product and
a power of two (``CpuFlashWithProfile``), elsewhere through the public SDPA (``SdpaWithProfile``).
With dropout on the CPU, SDPA's math kernel keeps the probability map anyway, and the profile comes
from that same map (``math_attention_with_profile``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from .received_profiles import (
    BlockBuffers,
    block_probabilities,
    block_scores,
    block_shape,
    profile_by_blocks,
    weighted_column_sums,
)
from .score_blocks import Block, call_settings, score_bias, visible_blocks


def _gradient_columns(head_size: int, device: torch.device) -> int:
    """Columns appended to the heads for ``SdpaWithProfile``'s backward: one, rounded up on an
    accelerator so that the head size stays a multiple of 8, which its fused kernels require."""
    if device.type == "cpu":
        return 1
    return -(head_size + 1) % 8 + 1


def _widen(
    heads: torch.Tensor,
    column: torch.Tensor | float | None,
    extra: int,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``heads`` [..., head size] with ``extra`` columns appended: ``column`` [...] (or zeros), then
    zeros; contiguous, in ``dtype`` (default: that of ``heads``)."""
    size = heads.shape[-1]
    widened = heads.new_empty((*heads.shape[:-1], size + extra), dtype=dtype or heads.dtype)
    widened[..., :size] = heads
    if column is not None:
        widened[..., size] = column
    if extra > (column is not None):
        widened[..., size + (column is not None) :] = 0
    return widened


class SdpaWithProfile(torch.autograd.Function):
    """SDPA's output of one attention call without dropout, and its profile; both gradients from one
    SDPA backward pass. The route wherever ``CpuFlashWithProfile`` is not (accelerators).

    The forward pass runs SDPA, keeping nothing for the backward, and the profile block by block (as
    ``ReceivedAttention``). The profile's score gradient ``w_q · P ⊙ (G_k − Σ_k' P G_k')`` is the
    softmax backward of ``dP = w_q G_k``, a rank-one term beside SDPA's own ``dP = dO Vᵀ``: with
    ``G`` appended to the values as one more column, zeros to the queries and keys, and ``w`` to
    the output gradient, SDPA's forward and backward on the widened heads give the query, key and
    value gradients of both at once. The backward pass so recomputes the attention once instead of
    the profile's blocks, and the elementwise work stays inside SDPA's fused kernel.
    """

    @staticmethod
    def forward(ctx, query, key, value, mask, weights, chunk_elements, module, kwargs):
        output, _ = sdpa_attention_forward(module, query, key, value, mask, **kwargs)
        profile, *_ = profile_by_blocks(query, key, mask, weights, kwargs["scaling"], chunk_elements)
        ctx.save_for_backward(query, key, value, mask, weights)
        ctx.module, ctx.kwargs = module, kwargs
        return output, profile

    @staticmethod
    def backward(ctx, grad_output, grad_profile):
        query, key, value, mask, weights = ctx.saved_tensors
        extra = _gradient_columns(query.shape[-1], query.device)
        with torch.enable_grad():
            q, k, v = (tensor.detach().requires_grad_() for tensor in (query, key, value))
            widened = (_widen(q, None, extra), _widen(k, None, extra), _widen(v, grad_profile, extra))
            output, _ = sdpa_attention_forward(ctx.module, *widened, mask, **ctx.kwargs)
            # the output is [batch, queries, heads, head size]; w weighs each query of every head
            w = weights[:, :, None].expand(grad_output.shape[:-1])
            grads = torch.autograd.grad(output, (q, k, v), _widen(grad_output, w, extra))
        return (*grads, None, None, None, None, None)


def _cpu_flash_operators() -> tuple | None:
    """PyTorch's CPU flash-attention forward and backward operators, which return and take the
    log-sum-exp of each query's scores (what its public SDPA runs on the CPU without dropout), or
    None where this torch has none. They are private, so one tiny call checks that their signatures
    are the ones used here."""
    try:
        forward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
        heads = torch.zeros(1, 1, 2, 8)
        bias = torch.zeros(1, 1, 1, 2)
        output, lse = forward(heads, heads, heads, 0.0, False, attn_mask=bias, scale=1.0)
        backward(output, heads, heads, heads, output, lse, 0.0, False, attn_mask=bias, scale=1.0)
    except (AttributeError, RuntimeError, TypeError):
        return None
    return forward, backward


_CPU_FLASH = _cpu_flash_operators()


def cpu_flash_available() -> bool:
    """Whether attention without dropout takes ``CpuFlashWithProfile`` on the CPU (this torch has
    the operators, and no ``portable_route`` is in force)."""
    return _CPU_FLASH is not None


@contextmanager
def portable_route(enabled: bool = True) -> Iterator[None]:
    """Within it (where ``enabled``), attention without dropout takes the portable route on the CPU
    too, as on an accelerator: for benchmarks and tests that compare the two routes."""
    global _CPU_FLASH
    cpu_flash = _CPU_FLASH
    _CPU_FLASH = None if enabled else cpu_flash
    try:
        yield
    finally:
        _CPU_FLASH = cpu_flash


def _normalized_heads(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    lse: torch.Tensor,
    weights: torch.Tensor,
    scaling: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Q' = [Q, −lse / scaling], K' = [K, 1] and ``bias`` · log₂e, in float32 (float64 for
    float64 input), so that ``2 ** (Q' K'ᵀ · scaling · log₂e + bias)`` is the attention map itself:
    one product and one power of two per score, no softmax (``_normalized_maps``). ``lse`` [batch,
    heads, queries] is the log-sum-exp of each query's scores; ``bias`` the additive mask the kernel
    was given (``score_bias``), or None where the blocks need none. Powers of two, as PyTorch's
    ``exp`` on the CPU is much slower on scores whose exponential underflows (masked keys). Queries
    of weight zero, or with no key to see, get −∞ instead, which makes their rows of the map zero.
    """
    dtype = torch.promote_types(query.dtype, torch.float32)
    usable = (weights[:, None, :] > 0) & (lse > torch.finfo(lse.dtype).min / 2)
    q = _widen(query, torch.where(usable, -lse / scaling, -math.inf), 1, dtype)
    bias = None if bias is None else bias.to(dtype) * math.log2(math.e)
    return q, _widen(key, 1.0, 1, dtype), bias


def _normalized_maps(
    query: torch.Tensor, key: torch.Tensor, bias: torch.Tensor | None, scaling: float, blocks: list[Block]
) -> Iterator[tuple[Block, torch.Tensor]]:
    """``blocks`` of the attention map [rows, heads, queries, keys] from ``_normalized_heads``'s
    heads and bias, each written over the previous one."""
    buffers = BlockBuffers(query, None)
    for block in blocks:
        shape = block_shape(query, key, block)
        scores, _ = buffers.views(shape)
        scores = block_scores(query, key, bias, scaling * math.log2(math.e), block, scores)
        yield block, scores.exp2_().view(shape)


class CpuFlashWithProfile(torch.autograd.Function):
    """``SdpaWithProfile`` on the CPU, through the flash kernel's own operators.

    The forward operator also returns each query's log-sum-exp, which turns the profile's blocks
    into one product and one power of two each (``_normalized_heads``), and the backward operator
    takes the output and log-sum-exp instead of recomputing the forward: on the widened heads it
    needs the widened output ``[O, P G]``, whose extra column one pass of blocks gives.
    """

    @staticmethod
    def forward(ctx, query, key, value, mask, weights, scaling, chunk_elements):
        flash_forward, _ = _CPU_FLASH
        kernel_bias = score_bias(mask, query.dtype)
        output, lse = flash_forward(query, key, value, 0.0, False, attn_mask=kernel_bias, scale=scaling)
        ctx.blocks, ctx.masked = visible_blocks(query, key, kernel_bias, weights, chunk_elements)
        q, k, bias = _normalized_heads(query, key, kernel_bias if ctx.masked else None, lse, weights, scaling)
        profile = q.new_zeros((q.shape[0], q.shape[1], k.shape[-2]))
        maps = _normalized_maps(q, k, bias, scaling, ctx.blocks)
        profile = weighted_column_sums(maps, weights, profile)
        ctx.save_for_backward(query, key, value, kernel_bias, weights, output, lse)
        ctx.scaling = scaling
        return output.transpose(1, 2).contiguous(), profile

    @staticmethod
    def backward(ctx, grad_output, grad_profile):
        query, key, value, kernel_bias, weights, output, lse = ctx.saved_tensors
        _, flash_backward = _CPU_FLASH
        bias = kernel_bias if ctx.masked else None
        q, k, bias = _normalized_heads(query, key, bias, lse, weights, ctx.scaling)
        g = grad_profile.to(q.dtype)[..., None]
        sent = lse.new_zeros(lse.shape, dtype=q.dtype)  # Σ_k P[b, h, q, k] G[b, h, k]
        for block, probs in _normalized_maps(q, k, bias, ctx.scaling, ctx.blocks):
            rows, head_group, query_group, key_group = block
            g_block = g[rows, head_group, key_group]
            sent[rows, head_group, query_group] = torch.matmul(probs, g_block).squeeze(-1)
        w = weights[:, None, :].expand(lse.shape)
        grads = flash_backward(
            _widen(grad_output.transpose(1, 2), w, 1),
            _widen(query, None, 1),
            _widen(key, None, 1),
            _widen(value, grad_profile, 1),
            _widen(output, sent, 1),
            lse,
            0.0,
            False,
            attn_mask=kernel_bias,
            scale=ctx.scaling,
        )
        return (*(grad[..., :-1] for grad in grads), None, None, None, None)


def attention_with_profile(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float,
    chunk_elements: int,
    module: torch.nn.Module,
    kwargs: dict,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and profile of an attention call without dropout: ``CpuFlashWithProfile`` on the CPU
    where torch has its operators, else ``SdpaWithProfile``."""
    if query.device.type == "cpu" and _CPU_FLASH is not None:
        return CpuFlashWithProfile.apply(query, key, value, mask, weights, scaling, chunk_elements)
    kwargs = {**kwargs, "scaling": scaling}
    return SdpaWithProfile.apply(query, key, value, mask, weights, chunk_elements, module, kwargs)


class _Bidirectional(torch.nn.Module):
    """Stands in for a model's attention module where there is none: not causal, no grouped heads."""

    is_causal = False


def sdpa_with_profile(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float | None = None,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDPA's output [batch, positions, heads, head size] of a bidirectional attention call without
    dropout, and its profile (as ``received_attention``), by the route ``attention_with_profile``
    picks."""
    scaling, chunk_elements = call_settings(query, scaling, chunk_elements)
    return attention_with_profile(
        query, key, value, mask, weights, scaling, chunk_elements, _Bidirectional(), {"dropout": 0.0}
    )


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
    everything = (slice(None),) * 4
    probs = block_probabilities(query, key, score_bias(mask, query.dtype), scaling, everything)
    profile = torch.einsum("bhqk,bq->bhk", probs.float(), weights)
    output = torch.matmul(torch.nn.functional.dropout(probs, p=dropout, training=True), value)
    return output.transpose(1, 2).contiguous(), profile
