"""What attention guiding costs: training-step time and peak memory against plain fine-tuning.

Four routes per model and shape, all measured in this one process:

- ``plain-sdpa``: fine-tuning without guiding, SDPA attention kernel (the reference);
- ``plain-eager``: the same with the eager kernel;
- ``guided-output-attentions``: MDG+PDG on every layer from ``output_attentions=True`` maps (eager
  kernel, every map kept for the backward pass: the released code's route);
- ``guided-efficient``: MDG+PDG on every layer through attnguide's efficient capture (SDPA output,
  profiles computed chunk by chunk beside it; on the CPU with attention dropout, where SDPA runs
  its math kernel, from that kernel's map).

``--routes`` picks some of them (``plain-sdpa`` is always measured, as the reference) or adds
``guided-efficient-portable``: the efficient capture with PyTorch's CPU flash-attention operators
hidden, so that a CPU without attention dropout takes the route that accelerators take, or
``lora-plain-sdpa`` and ``lora-guided-efficient``: the same routes training a LoRA adapter
(``--lora-r``, default 8, on query and value, as ``attnguide train --lora-r``) instead of every weight.

Models: the packaged MiniLM-L6-H384 and a randomly initialised BERT-base-sized encoder (12 layers,
12 heads, hidden 768); ``--models mpnet-base`` adds MPNet-base (all-mpnet-base-v2, the ``mpnet``
extra), whose ``plain-sdpa`` is attnguide's SDPA self-attention (``models.use_mpnet_sdpa``) and whose
``plain-eager`` is transformers' own. Shapes: n = 128 with batch 32 and n = 512 with batch 8
(``--batch`` sets another), every sequence full length, or with ``--padded`` of a random length
from n/2 to n, the first one n (a batch padded to its longest sequence, as dynamic padding makes
them). A step is forward, losses, backward and an AdamW
update in training mode (dropout on; ``--no-attention-dropout`` turns attention dropout off, so that
SDPA runs its fused kernel on the CPU too). Devices: the CPU, and a CUDA GPU when there is one (bf16
autocast there, as users would run it).

Time is the median over the timed steps, after warm-up. The routes take their steps in turn, one
round at a time, and a route's time ratio is the median over rounds of its step time over
``plain-sdpa``'s in the same round, so that load from other processes, which drifts over a run
on a shared machine, falls on all routes alike and cancels. Peak memory is that of one more step:
the route's resident tensors (weights, optimizer state) plus the most that the step allocates on
top of them, from ``torch.cuda.max_memory_allocated`` on a GPU and from a count of live tensor
storages on the CPU, where PyTorch keeps no allocator statistics. Both are printed as ratios to
``plain-sdpa`` and written as JSON.

    python benchmarks/overhead.py --quick              # reduced: MiniLM only, few steps (< 3 min on CPU)
    python benchmarks/overhead.py --output overhead.json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from attnguide import GuideConfig
from attnguide.capture.routes import make_capture
from attnguide.capture.sdpa_profiles import portable_route
from attnguide.guiding.batch_losses import guide_losses, weighted_sum
from attnguide.model_store import resolve_model_name
from attnguide.models import default_model_path, use_mpnet_sdpa
from attnguide.training.adapters import add_lora
from attnguide.training.options import TrainOptions

ROUTES = ("plain-sdpa", "plain-eager", "guided-output-attentions", "guided-efficient")
PORTABLE = "guided-efficient-portable"
LORA_ROUTES = ("lora-plain-sdpa", "lora-guided-efficient")
MODELS = ("minilm", "bert-base")
OPTIONAL_MODELS = ("mpnet-base",)
SHAPES = ((128, 32), (512, 8))
LABELS = ["a", "b", "c"]


@dataclass
class Result:
    device: str
    dtype: str
    model: str
    length: int
    batch: int
    route: str
    capture: str | None
    median_s: float
    step_s: list[float]
    peak_bytes: int
    padded_scores: float
    time_ratio: float = 1.0
    memory_ratio: float = 1.0


def build_model(name: str, attention_dropout: bool) -> transformers.PreTrainedModel:
    """The packaged MiniLM or MPNet-base with a fresh 3-way head, or a random BERT-base-sized classifier."""
    torch.manual_seed(0)
    settings = {"num_labels": len(LABELS)}
    if not attention_dropout:
        settings["attention_probs_dropout_prob"] = 0.0
    if name == "minilm":
        return AutoModelForSequenceClassification.from_pretrained(default_model_path(), **settings)
    if name == "mpnet-base":
        return AutoModelForSequenceClassification.from_pretrained(resolve_model_name(name), **settings)
    return BertForSequenceClassification(BertConfig(**settings))


def make_batch(
    model: transformers.PreTrainedModel, length: int, size: int, device: torch.device, padded: bool = False
) -> dict:
    """Random token ids; full length, or (``padded``) of random lengths from n/2 to n, the first n."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, model.config.vocab_size, (size, length), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        lengths = torch.randint(length // 2, length + 1, (size,), generator=g)
        lengths[0] = length
        mask = (torch.arange(length) < lengths[:, None]).long()
        ids = ids.masked_fill(mask == 0, model.config.pad_token_id or 0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "labels": torch.randint(0, len(LABELS), (size,), generator=g).to(device),
    }


def padded_share(mask: torch.Tensor) -> float:
    """The share of a batch's query × key scores that involve a padded position."""
    lengths = mask.sum(-1).double()
    return round(1 - float((lengths**2).sum()) / (mask.shape[0] * mask.shape[1] ** 2), 3)


class Route:
    """One model copy with its optimizer, set up for a route; ``step()`` runs one training step."""

    def __init__(
        self, name: str, base: transformers.PreTrainedModel, device: torch.device, dtype, lora_r: int = 8
    ) -> None:
        self.name = name
        self.model = copy.deepcopy(base).to(device).train()
        if name.startswith("lora-"):
            options = TrainOptions(output_dir="unused", train="unused", lora_r=lora_r)
            self.model = add_lora(self.model, options, "SEQ_CLS")
            name = name.removeprefix("lora-")
        self.guide = None
        self.capture = None
        self.portable = name == PORTABLE
        if name.startswith("plain-"):
            self.model.set_attn_implementation(name.removeprefix("plain-"))
            if name == "plain-sdpa":
                use_mpnet_sdpa(self.model)
        else:
            self.guide = GuideConfig(capture="efficient" if self.portable else name.removeprefix("guided-"))
            self.capture = make_capture(self.model, self.guide)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5)
        self.autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step(self, batch: dict) -> None:
        mask = batch["attention_mask"]
        with self.autocast, portable_route(self.portable):
            extra = self.capture.forward_kwargs(mask) if self.capture is not None else {}
            outputs = self.model(**batch, **extra)
            loss = outputs.loss
            if self.capture is not None:
                profiles = self.capture.profiles(outputs, mask)
                parts = guide_losses(profiles, mask, self.guide, self.capture.heads_per_layer)
                loss = loss + weighted_sum(parts, self.guide, step=1)
        del outputs
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def resident(self) -> list[torch.Tensor]:
        """The tensors this route keeps between steps: weights and optimizer state."""
        state = [t for s in self.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        return [*self.model.parameters(), *self.model.buffers(), *state]


class LiveStorageCount(TorchDispatchMode):
    """Peak bytes of live tensor storages while active: the given ones plus those ops create.

    A storage is counted when an op first returns it and uncounted when it is freed, so this is
    the CPU counterpart of ``torch.cuda.max_memory_allocated`` for everything that goes through
    PyTorch's dispatcher (scratch space inside a fused kernel is not seen).
    """

    def __init__(self, resident: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0
        for tensor in resident:
            self._count(tensor.untyped_storage())

    def _count(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        if key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.current += self.live[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._uncount, key)

    def _uncount(self, key: int) -> None:
        self.current -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type == "cpu":
                self._count(leaf.untyped_storage())
        return out


def peak_memory(route: Route, batch: dict, device: torch.device) -> int:
    """Resident bytes of the route plus the most one training step allocates on top of them."""
    resident = route.resident()
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        route.step(batch)
        torch.cuda.synchronize()
        own = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in resident}.values())
        return torch.cuda.max_memory_allocated() - before + own
    with LiveStorageCount(resident) as counter:
        route.step(batch)
    return counter.peak


def timed(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(
    model_name: str,
    length: int,
    size: int,
    device: torch.device,
    dtype,
    args: argparse.Namespace,
) -> list[Result]:
    """Every route on one model and shape: steps taken in turn, then one memory step each."""
    warmup, steps = args.warmup, args.steps
    base = build_model(model_name, attention_dropout=not args.no_attention_dropout)
    routes = [Route(name, base, device, dtype, args.lora_r) for name in args.routes]
    del base
    batch = make_batch(routes[0].model, length, size, device, args.padded)
    padded_scores = padded_share(batch["attention_mask"])
    times: dict[str, list[float]] = {r.name: [] for r in routes}
    for i in range(warmup + steps):
        for route in routes:
            seconds = timed(lambda route=route: route.step(batch), device)
            if i >= warmup:
                times[route.name].append(seconds)
    results = []
    for route in routes:
        gc.collect()
        results.append(
            Result(
                device=device.type,
                dtype=str(dtype).removeprefix("torch."),
                model=model_name,
                length=length,
                batch=size,
                route=route.name,
                capture=route.capture.route if route.capture is not None else None,
                median_s=statistics.median(times[route.name]),
                step_s=[round(t, 4) for t in times[route.name]],
                peak_bytes=peak_memory(route, batch, device),
                padded_scores=padded_scores,
            )
        )
    reference = results[0]
    for result in results:
        rounds = zip(result.step_s, reference.step_s, strict=True)
        result.time_ratio = statistics.median(step / plain for step, plain in rounds)
        result.memory_ratio = result.peak_bytes / reference.peak_bytes
    del routes
    gc.collect()
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| device | model | n × batch | route | step (ms) | × sdpa | peak memory (MiB) | × sdpa |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.device} {r.dtype} | {r.model} | {r.length} × {r.batch}"
            f"{f' ({r.padded_scores:.0%} of scores padded)' if r.padded_scores else ''} | {r.route} | "
            f"{r.median_s * 1000:.0f} | {r.time_ratio:.2f} | "
            f"{r.peak_bytes / 2**20:.0f} | {r.memory_ratio:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="MiniLM only, 1 warm-up and 2 timed steps")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS + OPTIONAL_MODELS,
        help="default: MiniLM and BERT-base (MiniLM with --quick)",
    )
    parser.add_argument(
        "--lengths", nargs="+", type=int, choices=[n for n, _ in SHAPES], help="default: all shapes"
    )
    parser.add_argument(
        "--batch", type=int, help="batch size of every shape (default: 32 at n = 128, 8 at 512)"
    )
    parser.add_argument("--warmup", type=int, help="untimed steps per route (default 2; 1 with --quick)")
    parser.add_argument("--steps", type=int, help="timed steps per route (default 10; 2 with --quick)")
    parser.add_argument(
        "--routes",
        nargs="+",
        choices=[*ROUTES, PORTABLE, *LORA_ROUTES],
        help="default: the four above; plain-sdpa always",
    )
    parser.add_argument("--lora-r", type=int, default=8, help="rank of the lora- routes (default: 8)")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU even if there is one")
    parser.add_argument(
        "--no-attention-dropout",
        action="store_true",
        help="attention dropout 0 (on the CPU, SDPA then runs its fused kernel instead of its math one)",
    )
    parser.add_argument(
        "--padded", action="store_true", help="sequences of random lengths from n/2 to n (default: all n)"
    )
    parser.add_argument("--output", default="overhead.json", help="JSON results (default: overhead.json)")
    args = parser.parse_args(argv)
    args.models = args.models or (["minilm"] if args.quick else list(MODELS))
    args.routes = ["plain-sdpa", *dict.fromkeys(r for r in args.routes or ROUTES if r != "plain-sdpa")]
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.steps = args.steps if args.steps is not None else (2 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()
    devices = [(torch.device("cpu"), torch.float32)]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append((torch.device("cuda"), torch.bfloat16))
    started = time.time()
    results: list[Result] = []
    for device, dtype in devices:
        for model_name in args.models:
            shapes = [(n, args.batch or b) for n, b in SHAPES if args.lengths is None or n in args.lengths]
            for length, size in shapes:
                results += measure(model_name, length, size, device, dtype, args)
                print(table(results[-len(args.routes) :]).split("\n", 2)[2], file=sys.stderr, flush=True)
    print(table(results))
    report = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "warmup": args.warmup,
        "steps": args.steps,
        "attention_dropout": not args.no_attention_dropout,
        "padded": args.padded,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if any(d.type == "cuda" for d, _ in devices) else None,
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "results": [asdict(r) for r in results],
    }
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(f"results written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
