"""Where guiding's extra step time goes: operator self times of a plain and a guided training step.

The same model, batch and step as ``benchmarks/overhead.py`` (its ``Route``), plain SDPA against the
efficient route, attention dropout off (SDPA's fused kernel); both profiled with torch.profiler over
a few steps after warm-up. Prints each route's total self CPU time per step and the operators whose
time grew most, in ms per step.

    python benchmarks/profile_step.py                      # MiniLM, n = 512, batch 8
    python benchmarks/profile_step.py --model bert-base --length 128 --batch 32
"""

from __future__ import annotations

import argparse
import os

import torch
import transformers
from overhead import Route, build_model, make_batch
from torch.profiler import ProfilerActivity, profile


def self_times(route: Route, batch: dict, warmup: int, steps: int) -> dict[str, float]:
    """Self CPU time per step of every operator, in ms."""
    for _ in range(warmup):
        route.step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            route.step(batch)
    return {event.key: event.self_cpu_time_total / 1000 / steps for event in prof.key_averages()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["minilm", "bert-base"], default="minilm")
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rows", type=int, default=12, help="operators to list")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()
    base = build_model(args.model, attention_dropout=False)
    batch = make_batch(base, args.length, args.batch, torch.device("cpu"))
    times = {}
    for name in ("plain-sdpa", "guided-efficient"):
        route = Route(name, base, torch.device("cpu"), torch.float32)
        times[name] = self_times(route, batch, args.warmup, args.steps)
        print(f"{name}: {sum(times[name].values()):.0f} ms of self CPU time per step")
    plain, guided = times["plain-sdpa"], times["guided-efficient"]
    growth = {key: guided.get(key, 0.0) - plain.get(key, 0.0) for key in plain.keys() | guided.keys()}
    print("| operator | plain (ms) | guided (ms) | extra (ms) |\n|---|---:|---:|---:|")
    for key in sorted(growth, key=growth.get, reverse=True)[: args.rows]:
        print(f"| `{key}` | {plain.get(key, 0.0):.1f} | {guided.get(key, 0.0):.1f} | {growth[key]:+.1f} |")


if __name__ == "__main__":
    main()
