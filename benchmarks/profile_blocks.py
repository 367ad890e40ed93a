"""Time the efficient capture's profile alone against PyTorch SDPA, by block size.

One attention call's worth of work, forward and backward, on random queries and keys (batch 8,
12 heads, n = 512, the last fifth of every sequence padded unless ``--no-padding``): PyTorch's SDPA
output; SDPA's output and the profile together, as guiding without attention dropout computes them
(``sdpa_with_profile``, default block size), by the CPU flash operators' route and by the portable
route that accelerators take; and ``received_attention`` alone, as the route with attention dropout
on an accelerator uses it, with blocks of 2^16 to 2^22 scores. The median of
several repeats, in ms, on the CPU with the current torch thread count. ``--breakdown`` adds where
the profile's time goes at the default block size (torch.profiler, self CPU time by operator kind).

    python benchmarks/profile_blocks.py                     # head sizes 32 and 64
    OMP_NUM_THREADS=1 python benchmarks/profile_blocks.py --breakdown
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from attnguide.capture.received_profiles import query_weights, received_attention
from attnguide.capture.score_blocks import default_chunk_elements
from attnguide.capture.sdpa_profiles import portable_route, sdpa_with_profile

KINDS = {
    "products": ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm"),
    "softmax": ("aten::_softmax", "aten::_softmax_backward_data"),
}


def median_ms(step: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``step`` in ms, after one untimed call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def inputs(head_size: int, batch: int, heads: int, length: int, padded: bool = True) -> dict:
    """Queries, keys, values, the boolean 4-D padding mask (None unpadded) and the query weights of
    one call."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, heads, length, head_size)
    q, k, v = (torch.randn(shape, generator=generator, requires_grad=True) for _ in range(3))
    valid = torch.ones(batch, length)
    if padded:
        valid[:, length - length // 5 :] = 0
    mask = valid.bool()[:, None, None, :].expand(batch, 1, length, length) if padded else None
    return {"q": q, "k": k, "v": v, "mask": mask, "weights": query_weights(valid)}


def sdpa_step(x: dict) -> Callable[[], None]:
    def step() -> None:
        out = torch.nn.functional.scaled_dot_product_attention(x["q"], x["k"], x["v"], attn_mask=x["mask"])
        out.sum().backward()

    return step


def sdpa_with_profile_step(x: dict, portable: bool = False) -> Callable[[], None]:
    """``sdpa_with_profile``, by the portable route where ``portable`` (the CPU operators hidden)."""

    def step() -> None:
        with portable_route(portable):
            out, profile = sdpa_with_profile(x["q"], x["k"], x["v"], x["mask"], x["weights"])
            (out.sum() + profile.square().sum()).backward()

    return step


def profile_step(x: dict, elements: int | None) -> Callable[[], None]:
    def step() -> None:
        profile = received_attention(x["q"], x["k"], x["mask"], x["weights"], chunk_elements=elements)
        profile.square().sum().backward()

    return step


def breakdown(x: dict) -> dict[str, float]:
    """Share of the profile's self CPU time by operator kind, at the default block size."""
    step = profile_step(x, None)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    shares = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in prof.key_averages():
        kind = next((name for name, ops in KINDS.items() if event.key in ops), "other")
        shares[kind] += event.self_cpu_time_total
    total = sum(shares.values())
    return {kind: value / total for kind, value in shares.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head-sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-padding", action="store_true", help="full-length sequences, no mask")
    parser.add_argument("--breakdown", action="store_true", help="where the profile's time goes")
    args = parser.parse_args()
    default = default_chunk_elements(torch.device("cpu"))
    print(f"torch threads {torch.get_num_threads()}; default block {default} scores")
    blocks = " | ".join(f"2^{p}" for p in range(16, 23))
    print(
        f"| head size | SDPA fwd+bwd (ms) | SDPA with profile: CPU flash route | portable route "
        f"| profile alone: {blocks} |"
    )
    print("|---:|---:|---:|---:|" + "---:|" * 7)
    for head_size in args.head_sizes:
        x = inputs(head_size, args.batch, args.heads, args.length, padded=not args.no_padding)
        sdpa = median_ms(sdpa_step(x), args.repeats)
        routes = [median_ms(sdpa_with_profile_step(x, portable), args.repeats) for portable in (False, True)]
        cells = [median_ms(profile_step(x, 1 << p), args.repeats) for p in range(16, 23)]
        print(f"| {head_size} | {sdpa:.0f} | " + " | ".join(f"{ms:.0f}" for ms in routes + cells) + " |")
        if args.breakdown:
            shares = ", ".join(f"{kind} {share:.0%}" for kind, share in breakdown(x).items())
            print(f"  profile time at head size {head_size}, default block: {shares}")


if __name__ == "__main__":
    main()
