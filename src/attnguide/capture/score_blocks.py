"""Which blocks of attention scores a profile needs, and how large they are.

A profile (docs/METHOD.md) is computed one block of scores at a time, so that at most one block
exists at once (``received_profiles``, ``sdpa_profiles``). ``_blocks`` cuts the scores into blocks of
at most a given number of elements; ``visible_blocks`` keeps, on the CPU, only each sequence's
weighted queries and the keys its padding mask shows; ``score_bias`` is the additive form of the
mask an attention function is given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch

CPU_ELEMENTS_PER_THREAD = 1 << 18
"""Scores held per block on the CPU, per torch thread: each thread's 1 MiB share of a block stays in
cache between the score product, the softmax and the reductions (``benchmarks/profile_blocks.py``,
head size 32: on one thread 101 ms against 128 with 16 MiB blocks; on two threads 56 ms with 2 MiB
blocks against 68 with 1 MiB ones)."""
ACCELERATOR_ELEMENTS = 1 << 22
"""Scores held per block on an accelerator, which wants fewer, larger blocks."""


Block = tuple[slice, slice, slice, slice]
"""The (batch rows, heads, queries, keys) of one block of scores."""
Span = tuple[slice, slice]
"""The queries and keys of one batch row that its profile needs (see ``visible_blocks``)."""


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


def visible_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    bias: torch.Tensor | None,
    weights: torch.Tensor,
    elements: int,
) -> tuple[list[Block], bool]:
    """The blocks that cover each row's span of weighted queries × keys not hidden from all of them,
    and whether the blocks still need ``bias`` (the ``score_bias`` of the mask).

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


def score_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
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


def default_chunk_elements(device: torch.device) -> int:
    """Scores per block: ``CPU_ELEMENTS_PER_THREAD`` per torch thread on the CPU, else
    ``ACCELERATOR_ELEMENTS``."""
    if device.type == "cpu":
        return CPU_ELEMENTS_PER_THREAD * torch.get_num_threads()
    return ACCELERATOR_ELEMENTS


def call_settings(
    query: torch.Tensor, scaling: float | None, chunk_elements: int | None
) -> tuple[float, int]:
    """``scaling`` (default 1/√d) and ``chunk_elements`` (default ``default_chunk_elements``) for an
    attention call on ``query``."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    if chunk_elements is None:
        chunk_elements = default_chunk_elements(query.device)
    return scaling, chunk_elements
