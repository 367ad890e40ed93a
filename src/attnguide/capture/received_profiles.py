"""The received profile of every head beside any attention kernel, block by block.

``received_attention`` computes the received profile (docs/METHOD.md) of every head (attention each
key receives, averaged over valid queries, before dropout) from the queries, keys and mask of one
attention call. It loops over blocks of scores (``score_blocks``), so at most one block exists at a
time, and recomputes the blocks in the backward pass instead of saving them: the only tensors it
keeps for the backward are the queries and keys, which the attention kernel keeps anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .score_blocks import Block, call_settings, score_bias, visible_blocks


class BlockBuffers:
    """The scores and probabilities of one block, reused by every block of a pass.

    Allocating them once per pass rather than once per block matters on the CPU: allocations of a
    few MiB come as fresh pages from the system, and filling those costs about as much as the
    softmax of the block itself, depending on the C library's allocation thresholds, which shift
    while a process runs.
    """

    def __init__(self, like: torch.Tensor, dtype: torch.dtype | None) -> None:
        """Scores like ``like``; probabilities in ``dtype``, or none (``views`` then gives None)."""
        self.like, self.dtype = like, dtype
        self.scores = self.probs = like.new_empty(0)

    def views(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores [rows · heads, queries, keys] and probabilities ``shape`` for a block of ``shape``."""
        size = math.prod(shape)
        if size > self.scores.numel():
            self.scores = self.like.new_empty(size)
            if self.dtype is not None:
                self.probs = self.like.new_empty(size, dtype=self.dtype)
        probs = self.probs[:size].view(shape) if self.dtype is not None else None
        return self.scores[:size].view(-1, *shape[-2:]), probs


def block_shape(query: torch.Tensor, key: torch.Tensor, block: Block) -> tuple[int, ...]:
    """[rows, heads, queries, keys] of ``block``'s scores."""
    rows, heads, queries, keys = block
    return (*query[rows, heads, queries].shape[:-1], key[0, 0, keys].shape[0])


def block_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    scaling: float,
    block: Block,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Q Kᵀ · scaling + bias of one block: [rows · heads, queries, keys], written into ``out``.

    ``query`` and ``key`` are contiguous [batch, heads, positions, head size]; ``bias`` comes from
    ``score_bias`` in their dtype; its batch, head and query dimensions may be 1 (broadcast). The
    bias and the scaling go into the product itself (``baddbmm``), so that the scores are written
    once.
    """
    rows, heads, queries, keys = block
    shape = block_shape(query, key, block)
    q, k = query[rows, heads, queries], key[rows, heads, keys]
    q, k = q.reshape(-1, *q.shape[-2:]), k.reshape(-1, *k.shape[-2:])
    if bias is None:  # beta = 0: no bias read, and the scaling still inside the product
        nothing = q.new_zeros(())
        return torch.baddbmm(nothing, q, k.transpose(-1, -2), beta=0, alpha=scaling, out=out)
    broadcast = zip(block[:3], bias.shape[:3], strict=True)
    block_bias = bias[(*(part if size > 1 else slice(None) for part, size in broadcast), keys)]
    block_bias = block_bias.expand(*shape[:2], *block_bias.shape[-2:]).reshape(-1, *block_bias.shape[-2:])
    return torch.baddbmm(block_bias, q, k.transpose(-1, -2), alpha=scaling, out=out)


def block_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    scaling: float,
    block: Block,
    buffers: BlockBuffers | None = None,
) -> torch.Tensor:
    """softmax(Q Kᵀ · scaling + bias) of one block: [rows, heads, queries, keys] (see ``block_scores``).

    With ``buffers`` the softmax is taken in their dtype and written into them (overwritten by the
    next block; no autograd); without, in the inputs' dtype, differentiably.
    """
    shape = block_shape(query, key, block)
    scores, probs = buffers.views(shape) if buffers is not None else (None, None)
    scores = block_scores(query, key, bias, scaling, block, scores)
    dtype = query.dtype if probs is None else probs.dtype
    return torch.softmax(scores.view(shape), dim=-1, dtype=dtype, out=probs)


def weighted_column_sums(
    maps: Iterator[tuple[Block, torch.Tensor]], weights: torch.Tensor, profile: torch.Tensor
) -> torch.Tensor:
    """Add Σ_q w[b, q] · P[b, h, q, k] to ``profile`` [batch, heads, keys], from the blocks of P that
    ``maps`` yields ([rows, heads, queries, keys] each), and return it."""
    w = weights.to(profile.dtype)[:, None, None, :]
    for (rows, head_group, query_group, key_group), probs in maps:
        profile[rows, head_group, key_group] += torch.matmul(w[rows, ..., query_group], probs).squeeze(-2)
    return profile


def profile_by_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float,
    chunk_elements: int,
) -> tuple[torch.Tensor, list[Block], bool]:
    """The profile Σ_q w[b, q] · P[b, h, q, k] [batch, heads, keys], one block of P (softmax of its
    scores) at a time, the blocks it used and whether they needed the mask (``visible_blocks``)."""
    dtype = torch.promote_types(query.dtype, torch.float32)
    batch, heads, _, keys = (*query.shape[:-1], key.shape[-2])
    q, k = query.contiguous(), key.contiguous()
    bias = score_bias(mask, query.dtype)
    blocks, masked = visible_blocks(q, k, bias, weights, chunk_elements)
    bias = bias if masked else None
    buffers = BlockBuffers(q, dtype)
    maps = ((block, block_probabilities(q, k, bias, scaling, block, buffers)) for block in blocks)
    profile = query.new_zeros((batch, heads, keys), dtype=dtype)
    return weighted_column_sums(maps, weights, profile), blocks, masked


class ReceivedAttention(torch.autograd.Function):
    """Σ_q w[b, q] · softmax(Q Kᵀ · scaling + bias)[b, h, q, k], accumulated block by block.

    Forward and backward each rebuild one block of probabilities at a time (see ``score_blocks``). With
    ``G`` the gradient of the output, the score gradient of a block is ``w_q · P ⊙ (G_k − Σ_k' P
    G_k')`` (softmax backward of ``dP = w_q G_k``); the factor ``w_q · scaling`` is applied to the
    block's query rows and query gradient rows rather than to the scores. A float mask that needs a
    gradient (MPNet's learned position bias) gets the score gradient itself, ``w_q · P ⊙ (G_k − Σ_k'
    P G_k')``, summed over the dimensions it broadcasts.
    """

    @staticmethod
    def forward(ctx, query, key, mask, weights, scaling, chunk_elements):
        profile, ctx.blocks, ctx.masked = profile_by_blocks(
            query, key, mask, weights, scaling, chunk_elements
        )
        ctx.save_for_backward(query, key, mask, weights)
        ctx.scaling = scaling
        return profile

    @staticmethod
    def backward(ctx, grad_profile):
        query, key, mask, weights = ctx.saved_tensors
        dtype = grad_profile.dtype
        q, k = query.contiguous(), key.contiguous()
        g = grad_profile[:, :, None, :]
        w = (weights.to(query.dtype) * ctx.scaling)[:, None, :, None]
        grad_query = torch.zeros_like(q) if ctx.needs_input_grad[0] else None
        grad_key = torch.zeros_like(k, dtype=dtype) if ctx.needs_input_grad[1] else None
        bias = score_bias(mask, query.dtype) if ctx.masked else None
        grad_bias = None
        if ctx.needs_input_grad[2]:
            grad_bias = q.new_zeros((*q.shape[:-1], k.shape[-2]), dtype=dtype)
            bias_weights = weights.to(dtype)[:, None, :, None]
        buffers = BlockBuffers(q, dtype)
        for block in ctx.blocks:
            rows, head_group, query_group, key_group = block
            probs = block_probabilities(q, k, bias, ctx.scaling, block, buffers)
            g_block = g[rows, head_group, :, key_group]
            received = torch.matmul(probs, g_block.transpose(-1, -2))
            grad_scores = (g_block - received).mul_(probs)
            if grad_bias is not None:
                grad_bias[block] = grad_scores * bias_weights[rows, :, query_group]
            grad_scores = grad_scores.to(query.dtype)
            w_block = w[rows, :, query_group]
            if grad_query is not None:
                grad_query[rows, head_group, query_group] = (
                    torch.matmul(grad_scores, k[rows, head_group, key_group]) * w_block
                )
            if grad_key is not None:
                grad_key[rows, head_group, key_group] += torch.matmul(
                    grad_scores.transpose(-1, -2), q[rows, head_group, query_group] * w_block
                )
        grad_key = grad_key.to(key.dtype) if grad_key is not None else None
        grad_mask = grad_bias.sum_to_size(mask.shape).to(mask.dtype) if grad_bias is not None else None
        return grad_query, grad_key, grad_mask, None, None, None


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
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """Per-head attention received by each key, [batch, heads, keys] in float32 (or float64 input).

    ``query``/``key`` are [batch, heads, positions, head size]; ``mask`` is the 4-D mask given to
    attention functions (boolean with True = attend, or additive; None for none); ``weights``
    [batch, queries] weighs the queries (see ``query_weights``); ``scaling`` defaults to 1/√d;
    ``chunk_elements`` bounds the scores held at a time (default: ``default_chunk_elements``).
    """
    scaling, chunk_elements = call_settings(query, scaling, chunk_elements)
    return ReceivedAttention.apply(query, key, mask, weights, scaling, chunk_elements)
