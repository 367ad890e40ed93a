"""Attention profiles next to the fast attention kernel, without keeping any n × n map alive.
``received_attention`` computes the received profile (docs/METHOD.md) of every head (attention each
key receives, averaged over valid queries, before dropout) from the queries, keys and mask of one
attention call. It loops over blocks of scores, so at most one block exists at a time, and
recomputes the blocks in the backward pass instead of saving them: the only tensors it keeps for the
backward are the queries and keys, which the attention kernel keeps anyway. On the CPU the blocks
cover only each sequence's weighted queries and the keys its padding mask shows
(``_visible_blocks``). Without attention dropout the output and the profile come together, and the
gradients of both from one backward pass of the attention kernel on heads widened by a column: on
the CPU through the flash kernel's own operators, whose log-sum-exp turns each block of the profile
into a product and a power of two (``CpuFlashWithProfile``), elsewhere through the public SDPA
(``SdpaWithProfile``).

``guided_sdpa_attention`` is registered with transformers' attention interface under
``ATTENTION_NAME``: it returns PyTorch SDPA's output exactly as the ``sdpa`` implementation does and,
when the model's forward call carries a ``ProfileRecorder`` (keyword ``RECORDER_KWARG``), also
hands the guided layers' queries and keys to it. Attention calls are numbered in the order they
happen, which is the layer order of an encoder; ALBERT and DistilBERT modules have no layer index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from ..errors import AttentionCaptureError

ATTENTION_NAME = "attnguide"
RECORDER_KWARG = "attnguide_recorder"
CPU_ELEMENTS_PER_THREAD = 1 << 18
"""Scores held per block on the CPU, per torch thread: each thread's 1 MiB share of a block stays in
cache between the score product, the softmax and the reductions (``benchmarks/profile_blocks.py``,
head size 32: on one thread 101 ms against 128 with 16 MiB blocks; on two threads 56 ms with 2 MiB
blocks against 68 with 1 MiB ones)."""
ACCELERATOR_ELEMENTS = 1 << 22
"""Scores held per block on an accelerator, which wants fewer, larger blocks."""

_UNSUPPORTED_KWARGS = ("position_bias", "softcap", "sliding_window", "s_aux")

Block = tuple[slice, slice, slice, slice]
"""The (batch rows, heads, queries, keys) of one block of scores."""
Span = tuple[slice, slice]
"""The queries and keys of one batch row that its profile needs (see ``_visible_blocks``)."""


def _blocks(
    batch: int, heads: int, queries: int, keys: int, elements: int, spans: Sequence[Span] | None = None
) -> Iterator[Block]:
    """Slices that cover each row's span of queries × keys (all of them without ``spans``) in blocks
    of at most ``elements`` scores.

    Consecutive rows with the same span share blocks. Blocks are whole batch rows where ``elements``
    allows, else groups of one row's heads, else groups of one head's queries (never fewer than one
    query): whole heads keep the slices of the contiguous queries and keys contiguous too.
    """
    spans = spans or [(slice(0, queries), slice(0, keys))] * batch
    for span, rows in itertools.groupby(range(batch), key=spans.__getitem__):
        rows = list(rows)
        yield from _span_blocks(rows[0], rows[-1] + 1, heads, span, elements)


def _span_blocks(first: int, stop: int, heads: int, span: Span, elements: int) -> Iterator[Block]:
    """The blocks of ``_blocks`` for rows ``first`` to ``stop`` (exclusive), which share ``span``."""
    query_span, key_span = span
    queries, keys = query_span.stop - query_span.start, key_span.stop - key_span.start
    if queries <= 0 or keys <= 0:
        return
    per_head = queries * keys
    if elements >= heads * per_head:
        rows = elements // (heads * per_head)
        for b in range(first, stop, rows):
            yield slice(b, min(b + rows, stop)), slice(None), query_span, key_span
    elif elements >= per_head:
        group = elements // per_head
        for b in range(first, stop):
            for h in range(0, heads, group):
                yield slice(b, b + 1), slice(h, h + group), query_span, key_span
    else:
        group = max(1, elements // keys)
        for b in range(first, stop):
            for h in range(heads):
                for q in range(query_span.start, query_span.stop, group):
                    query_group = slice(q, min(q + group, query_span.stop))
                    yield slice(b, b + 1), slice(h, h + 1), query_group, key_span


def _span_bounds(present: torch.Tensor) -> torch.Tensor:
    """[first, stop] of the True entries of each row of ``present`` [batch, positions]; [n, 0] for a
    row with none."""
    positions = torch.arange(present.shape[-1], device=present.device)
    first = torch.where(present, positions, present.shape[-1]).amin(-1)
    stop = torch.where(present, positions + 1, 0).amax(-1)
    return torch.stack([first, stop], -1)


def _visible_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    weights: torch.Tensor,
    elements: int,
) -> tuple[list[Block], bool]:
    """The blocks that cover each row's span of weighted queries × keys not hidden from all of them,
    and whether the blocks still need ``bias`` (the ``_score_bias`` of the mask).

    Queries of weight zero add nothing to a profile, and a key that a padding mask hides gets exactly
    zero attention (its score is the dtype's minimum), so with padding the blocks skip those rows
    and columns, and the bias too where it is zero all over the spans (adding it writes every score
    once more). Masks that differ by query or head keep all keys and the bias. On an accelerator the
    blocks cover everything: reading the spans back to the host would stall its queue of kernels,
    and blocks by row would multiply their launches.
    """
    batch, heads, queries, _ = query.shape
    keys = key.shape[-2]
    if query.device.type != "cpu":
        return list(_blocks(batch, heads, queries, keys, elements)), bias is not None
    weighted = _span_bounds(weights != 0)
    if bias is not None and bias.shape[1] == bias.shape[2] == 1:
        by_key = bias[:, 0, 0, :].expand(batch, keys)
        shown_bounds = _span_bounds(by_key > torch.finfo(bias.dtype).min)
        positions = torch.arange(keys, device=bias.device)
        inside = (positions >= shown_bounds[:, :1]) & (positions < shown_bounds[:, 1:])
        biased = ((by_key != 0) & inside).any(-1)
    else:
        shown_bounds = torch.tensor([0, keys], device=weights.device).expand(batch, 2)
        biased = torch.full((batch,), bias is not None, device=weights.device)
    bounds = torch.cat([weighted, shown_bounds, biased[:, None]], -1).tolist()
    spans = [(slice(q0, q1), slice(k0, k1)) for q0, q1, k0, k1, _ in bounds]
    blocks = list(_blocks(batch, heads, queries, keys, elements, spans))
    return blocks, any(row_biased for *_, row_biased in bounds)


def _score_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """The additive form of an attention function's 4-D mask (boolean with True = attend, additive,
    or None), with one query row where every query has the same row (a padding mask)."""
    if mask is None:
        return None
    if mask.shape[-2] > 1 and mask.stride(-2) == 0:
        mask = mask[..., :1, :]
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            ~mask, torch.finfo(dtype).min
        )
    return mask.to(dtype)


class _BlockBuffers:
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


def _block_shape(query: torch.Tensor, key: torch.Tensor, block: Block) -> tuple[int, ...]:
    """[rows, heads, queries, keys] of ``block``'s scores."""
    rows, heads, queries, keys = block
    return (*query[rows, heads, queries].shape[:-1], key[0, 0, keys].shape[0])


def _block_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    scaling: float,
    block: Block,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Q Kᵀ · scaling + bias of one block: [rows · heads, queries, keys], written into ``out``.

    ``query`` and ``key`` are contiguous [batch, heads, positions, head size]; ``bias`` comes from
    ``_score_bias`` in their dtype; its batch, head and query dimensions may be 1 (broadcast). The
    bias and the scaling go into the product itself (``baddbmm``), so that the scores are written
    once.
    """
    rows, heads, queries, keys = block
    shape = _block_shape(query, key, block)
    q, k = query[rows, heads, queries], key[rows, heads, keys]
    q, k = q.reshape(-1, *q.shape[-2:]), k.reshape(-1, *k.shape[-2:])
    if bias is None:  # beta = 0: no bias read, and the scaling still inside the product
        nothing = q.new_zeros(())
        return torch.baddbmm(nothing, q, k.transpose(-1, -2), beta=0, alpha=scaling, out=out)
    broadcast = zip(block[:3], bias.shape[:3], strict=True)
    block_bias = bias[(*(part if size > 1 else slice(None) for part, size in broadcast), keys)]
    block_bias = block_bias.expand(*shape[:2], *block_bias.shape[-2:]).reshape(-1, *block_bias.shape[-2:])
    return torch.baddbmm(block_bias, q, k.transpose(-1, -2), alpha=scaling, out=out)


def _block_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    scaling: float,
    block: Block,
    buffers: _BlockBuffers | None = None,
) -> torch.Tensor:
    """softmax(Q Kᵀ · scaling + bias) of one block: [rows, heads, queries, keys] (see ``_block_scores``).

    With ``buffers`` the softmax is taken in their dtype and written into them (overwritten by the
    next block; no autograd); without, in the inputs' dtype, differentiably.
    """
    shape = _block_shape(query, key, block)
    scores, probs = buffers.views(shape) if buffers is not None else (None, None)
    scores = _block_scores(query, key, bias, scaling, block, scores)
    dtype = query.dtype if probs is None else probs.dtype
    return torch.softmax(scores.view(shape), dim=-1, dtype=dtype, out=probs)


def _weighted_column_sums(
    maps: Iterator[tuple[Block, torch.Tensor]], weights: torch.Tensor, profile: torch.Tensor
) -> torch.Tensor:
    """Add Σ_q w[b, q] · P[b, h, q, k] to ``profile`` [batch, heads, keys], from the blocks of P that
    ``maps`` yields ([rows, heads, queries, keys] each), and return it."""
    w = weights.to(profile.dtype)[:, None, None, :]
    for (rows, head_group, query_group, key_group), probs in maps:
        profile[rows, head_group, key_group] += torch.matmul(w[rows, ..., query_group], probs).squeeze(-2)
    return profile


def _profile_by_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float,
    chunk_elements: int,
) -> tuple[torch.Tensor, list[Block], bool]:
    """The profile Σ_q w[b, q] · P[b, h, q, k] [batch, heads, keys], one block of P (softmax of its
    scores) at a time, the blocks it used and whether they needed the mask (``_visible_blocks``)."""
    dtype = torch.promote_types(query.dtype, torch.float32)
    batch, heads, _, keys = (*query.shape[:-1], key.shape[-2])
    q, k = query.contiguous(), key.contiguous()
    bias = _score_bias(mask, query.dtype)
    blocks, masked = _visible_blocks(q, k, bias, weights, chunk_elements)
    bias = bias if masked else None
    buffers = _BlockBuffers(q, dtype)
    maps = ((block, _block_probabilities(q, k, bias, scaling, block, buffers)) for block in blocks)
    profile = query.new_zeros((batch, heads, keys), dtype=dtype)
    return _weighted_column_sums(maps, weights, profile), blocks, masked


class ReceivedAttention(torch.autograd.Function):
    """Σ_q w[b, q] · softmax(Q Kᵀ · scaling + bias)[b, h, q, k], accumulated block by block.

    Forward and backward each rebuild one block of probabilities at a time (see ``_blocks``). With
    ``G`` the gradient of the output, the score gradient of a block is ``w_q · P ⊙ (G_k − Σ_k' P
    G_k')`` (softmax backward of ``dP = w_q G_k``); the factor ``w_q · scaling`` is applied to the
    block's query rows and query gradient rows rather than to the scores. A float mask that needs a
    gradient (MPNet's learned position bias) gets the score gradient itself, ``w_q · P ⊙ (G_k − Σ_k'
    P G_k')``, summed over the dimensions it broadcasts.
    """

    @staticmethod
    def forward(ctx, query, key, mask, weights, scaling, chunk_elements):
        profile, ctx.blocks, ctx.masked = _profile_by_blocks(
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
        bias = _score_bias(mask, query.dtype) if ctx.masked else None
        grad_bias = None
        if ctx.needs_input_grad[2]:
            grad_bias = q.new_zeros((*q.shape[:-1], k.shape[-2]), dtype=dtype)
            bias_weights = weights.to(dtype)[:, None, :, None]
        buffers = _BlockBuffers(q, dtype)
        for block in ctx.blocks:
            rows, head_group, query_group, key_group = block
            probs = _block_probabilities(q, k, bias, ctx.scaling, block, buffers)
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


def default_chunk_elements(device: torch.device) -> int:
    """Scores per block: ``CPU_ELEMENTS_PER_THREAD`` per torch thread on the CPU, else
    ``ACCELERATOR_ELEMENTS``."""
    if device.type == "cpu":
        return CPU_ELEMENTS_PER_THREAD * torch.get_num_threads()
    return ACCELERATOR_ELEMENTS


def _call_settings(
    query: torch.Tensor, scaling: float | None, chunk_elements: int | None
) -> tuple[float, int]:
    """``scaling`` (default 1/√d) and ``chunk_elements`` (default ``default_chunk_elements``) for an
    attention call on ``query``."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    if chunk_elements is None:
        chunk_elements = default_chunk_elements(query.device)
    return scaling, chunk_elements


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
    scaling, chunk_elements = _call_settings(query, scaling, chunk_elements)
    return ReceivedAttention.apply(query, key, mask, weights, scaling, chunk_elements)


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
        profile, *_ = _profile_by_blocks(query, key, mask, weights, kwargs["scaling"], chunk_elements)
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
    was given (``_score_bias``), or None where the blocks need none. Powers of two, as PyTorch's
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
    buffers = _BlockBuffers(query, None)
    for block in blocks:
        shape = _block_shape(query, key, block)
        scores, _ = buffers.views(shape)
        scores = _block_scores(query, key, bias, scaling * math.log2(math.e), block, scores)
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
        kernel_bias = _score_bias(mask, query.dtype)
        output, lse = flash_forward(query, key, value, 0.0, False, attn_mask=kernel_bias, scale=scaling)
        ctx.blocks, ctx.masked = _visible_blocks(query, key, kernel_bias, weights, chunk_elements)
        q, k, bias = _normalized_heads(query, key, kernel_bias if ctx.masked else None, lse, weights, scaling)
        profile = q.new_zeros((q.shape[0], q.shape[1], k.shape[-2]))
        maps = _normalized_maps(q, k, bias, scaling, ctx.blocks)
        profile = _weighted_column_sums(maps, weights, profile)
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


def _attention_with_profile(
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
    dropout, and its profile (as ``received_attention``), by the route ``_attention_with_profile``
    picks."""
    scaling, chunk_elements = _call_settings(query, scaling, chunk_elements)
    return _attention_with_profile(
        query, key, value, mask, weights, scaling, chunk_elements, _Bidirectional(), {"dropout": 0.0}
    )


class ProfileRecorder:
    """Collects the received-attention profiles of the guided layers during one forward call.

    Give it to the model's forward call as ``RECORDER_KWARG``; ``calls`` counts every attention
    call, so that a model whose attention calls do not match its layers can be detected. Given the
    model's ``num_layers``, calls beyond them are recomputations: activation checkpointing reruns a
    layer's forward in the backward pass, and that call must take the same route as the first, so
    its layer is the one the same attention module served in the forward pass.
    """

    def __init__(
        self,
        layers: Sequence[int],
        attention_mask: torch.Tensor | None = None,
        chunk_elements: int | None = None,
        num_layers: int | None = None,
    ) -> None:
        self.layers = frozenset(layers)
        self.attention_mask = attention_mask
        self.chunk_elements = chunk_elements
        self.num_layers = num_layers
        self.calls = 0
        self.profiles: list[torch.Tensor] = []
        self._weights: torch.Tensor | None = None
        self._layers_of: dict[torch.nn.Module, list[int]] = {}

    @property
    def recomputing(self) -> bool:
        """Whether the last call was a recomputation (see the class docstring)."""
        return self.num_layers is not None and self.calls > self.num_layers

    def next_layer_is_guided(
        self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, kwargs: dict
    ) -> bool:
        """Count one attention call; True if its layer is guided (checked to be one this route handles)."""
        self.calls += 1
        if self.recomputing:
            served = self._layers_of.get(module, [])
            guided = {layer in self.layers for layer in served}
            if len(guided) != 1:
                raise AttentionCaptureError(
                    f"{type(module).__name__} served layers {served} in the forward pass, guided and not, "
                    "and activation checkpointing reruns it: guide all of them or none, or use "
                    "capture='output-attentions'"
                )
            return guided.pop()
        layer = self.calls - 1
        self._layers_of.setdefault(module, []).append(layer)
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

    def record(self, profile: torch.Tensor) -> None:
        """Keep a guided layer's profile; a recomputation's repeats the forward pass's and is dropped."""
        if not self.recomputing:
            self.profiles.append(profile)

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
    everything = (slice(None),) * 4
    probs = _block_probabilities(query, key, _score_bias(mask, query.dtype), scaling, everything)
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

    A guided layer's output and profile come from ``SdpaWithProfile`` without attention dropout; with
    it, from ``math_attention_with_profile`` on the CPU (SDPA's math kernel there keeps the map
    anyway), else from SDPA beside ``received_attention`` (widening the heads cannot be combined with
    dropout, which would drop the profile's gradient column too). A mask that needs a gradient (MPNet's
    learned position bias) takes the same two routes as dropout, as the fused kernels give no mask
    gradient: on the CPU, where SDPA then runs its math kernel, ``math_attention_with_profile``
    (outside ``portable_route``), else SDPA, whose kernel gives it, beside ``received_attention``.
    """
    recorder: ProfileRecorder | None = kwargs.pop(RECORDER_KWARG, None)
    if recorder is None or not recorder.next_layer_is_guided(module, query, key, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scaling, chunk = _call_settings(query, kwargs.get("scaling"), recorder.chunk_elements)
    weights = recorder.query_weights(query)
    dropout = kwargs.get("dropout", 0.0)
    learned_mask = attention_mask is not None and attention_mask.requires_grad and torch.is_grad_enabled()
    if dropout == 0 and not learned_mask:
        output, profile = _attention_with_profile(
            query, key, value, attention_mask, weights, scaling, chunk, module, kwargs
        )
    elif query.device.type == "cpu" and (dropout != 0 or _CPU_FLASH is not None):
        output, profile = math_attention_with_profile(
            query, key, value, attention_mask, weights, scaling, dropout
        )
    else:
        profile = received_attention(query, key, attention_mask, weights, scaling, chunk)
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    recorder.record(profile)
    return output, None


AttentionInterface.register(ATTENTION_NAME, guided_sdpa_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
