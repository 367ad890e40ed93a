"""Does guiding help more when data is scarce? SICK entailment trained on fixed random subsets of
SICK_train (500, 1,000, 2,000 and all 4,500 pairs by default), several seeds each, unguided, at the
paper's default weights and, once ``attnguide tune`` has found one, at the tuned setting; accuracy
on SICK_trial (dev) with Student-t intervals, paired against the unguided runs of the same seed.

The subsets are nested (the first N pairs of one fixed shuffle, ``--subset-seed``), so every setting
and seed sees the same pairs and a larger set contains the smaller ones. Each run is
``attnguide train`` with ``--resume``, in ``OUTPUT/runs/n<size>/<setting>/seed<seed>``: a finished
run is not run again and an interrupted one continues from its last checkpoint, so running the
script again after a stop picks up where it was. Runs go seed by seed (every size and setting of
seed 1, then of seed 2, ...), so the figure is usable before the last seed. Several copies of the
command share the runs: each takes a run by locking it, skips those another copy holds, and at the
end waits for them (on a 2-core machine two one-thread copies finish twice as fast as one). Writes
``OUTPUT/results.json``, ``OUTPUT/report.md`` and ``OUTPUT/learning-curve.png`` after every run,
from every finished run on disk, with the flags every run had and, as the floor, the accuracy of
always answering the commonest dev label.

    python benchmarks/learning_curve.py --output-dir runs/learning-curve \
        [--tuned runs/tune-sick/results.json] [-- extra attnguide train flags]

``--tuned`` reads the best guided trial of a ``tune`` study on the same data; without it (or while
the study has no finished guided trial) the tuned setting is left out.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from attnguide.experiments.stats import paired_difference, summarize
from attnguide.files import atomic_path, write_json, write_text
from attnguide.guiding.registry import guide_settings
from attnguide.rundir import is_complete_run
from attnguide.tasks.pairs.data import read_pairs

BASELINE = "none"
DEFAULTS = "defaults"
TUNED = "tuned"


def write_subsets(
    train: Path, sizes: list[int], subset_seed: int, folder: Path
) -> tuple[dict[int, Path], int]:
    """The nested subsets of ``train`` (header kept), written once and reused after that, and the
    number of pairs in ``train``."""
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], [line for line in lines[1:] if line.strip()]
    if max(sizes) > len(rows):
        sys.exit(f"{train}: {len(rows)} pairs, fewer than the largest --sizes ({max(sizes)})")
    order = list(range(len(rows)))
    random.Random(subset_seed).shuffle(order)
    paths = {}
    for size in sizes:
        path = folder / f"train-{size}-seed{subset_seed}{train.suffix}"
        if not path.is_file():
            write_text(path, header + "".join(rows[i] for i in sorted(order[:size])))
        paths[size] = path
    return paths, len(rows)


def tuned_flags(results: Path, share: float) -> tuple[list[str], str] | None:
    """The train flags of the best guided trial in a ``tune`` results.json, and a description. The
    study ran on the whole training set; on a subset holding ``share`` of it, the guide's warm-up is
    scaled by ``share`` so that it covers the same part of training."""
    if not results.is_file():
        return None
    best = json.loads(results.read_text(encoding="utf-8")).get("best_trial")
    if not best:
        return None
    flags = ["--guide", best["guides"]]
    for setting in guide_settings():
        if setting.name in best:
            flags += [setting.flag, str(best[setting.name])]
    for key, flag in (("layers", "--layers"), ("scope", "--scope")):
        if key in best:
            flags += [flag, str(best[key])]
    if best.get("warmup_steps"):
        flags += ["--guide-warmup-steps", str(round(best["warmup_steps"] * share))]
    return flags, f"trial {best['trial']} of {results}: " + " ".join(flags)


@contextmanager
def claimed(run_dir: Path, wait: bool) -> Iterator[bool]:
    """Hold the run's lock while the block runs, so that no other copy of this script trains it;
    yields False, without waiting unless ``wait``, where another copy holds it."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def train(run_dir: Path, subset: Path, args: argparse.Namespace, seed: int, flags: list[str]) -> None:
    """One ``attnguide train`` run, resumed where interrupted."""
    command = [
        sys.executable, "-m", "attnguide", "train", "--train", str(subset), "--dev", str(args.dev),
        "--format", "sick", "--seed", str(seed), "--output-dir", str(run_dir), "--resume",
        *flags, *args.train_flags,
    ]  # fmt: skip
    print(" ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    print(f"{run_dir}: {time.monotonic() - started:.0f} s", flush=True)


def majority_share(dev: Path) -> float:
    """The share of the commonest entailment label in ``dev``, read as ``train --format sick`` reads
    it: the accuracy of always answering it, the floor a trained classifier has to clear."""
    labels = Counter(read_pairs(dev, "sick").labels)
    return max(labels.values()) / sum(labels.values())


def finished(runs: dict[tuple[str, int, int], Path], metric: str) -> dict[str, dict[int, dict[int, float]]]:
    """The metric of every finished run, by setting, size and seed."""
    values: dict[str, dict[int, dict[int, float]]] = {}
    for (setting, size, seed), run_dir in runs.items():
        if is_complete_run(run_dir):
            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
            values.setdefault(setting, {}).setdefault(size, {})[seed] = float(metrics[metric])
    return values


def median_seconds(runs: dict[tuple[str, int, int], Path]) -> dict[int, float]:
    """The median wall time of the finished runs of each size (run.json's ``seconds``)."""
    seconds: dict[int, list[float]] = {}
    for (_, size, _), run_dir in runs.items():
        if is_complete_run(run_dir):
            run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
            seconds.setdefault(size, []).append(run["seconds"])
    return {size: statistics.median(times) for size, times in sorted(seconds.items())}


def report(values: dict, settings: dict[str, str], context: dict[str, Any], metric: str, out: Path) -> None:
    """results.json, report.md and the figure from the metric of every finished run; ``context``
    holds the training flags every run had, the dev set's majority-class share and the median
    seconds a run of each size took."""
    rows = []
    for setting in settings:
        for size, seeds in sorted(values.get(setting, {}).items()):
            summary = summarize(list(seeds.values()))
            paired = None
            if setting != BASELINE:
                paired = paired_difference(seeds, values.get(BASELINE, {}).get(size, {}))
            rows.append({"setting": setting, "size": size, "values": seeds, "summary": asdict(summary),
                         "paired_vs_none": asdict(paired) if paired else None})  # fmt: skip
    write_json(out / "results.json", {"metric": metric, "settings": settings, **context, "rows": rows})
    lines = [
        f"# Learning curve: SICK dev {metric} against training pairs",
        "",
        f"Every run: `{' '.join(['attnguide train --format sick', *context['train_flags']])}` (its "
        "defaults otherwise). Always answering the commonest dev label scores "
        f"{context['majority_share']:.4f}. Median seconds a run: "
        + ", ".join(f"{size} pairs {t:.0f}" for size, t in context["median_seconds"].items())
        + ".",
        "",
        *(f"- **{name}**: {what}" for name, what in settings.items()),
        "",
        f"| pairs | setting | seeds | mean {metric} | 95% CI | Δ vs none | 95% CI of Δ | p (t) | verdict |",
        "|---:|---|---:|---:|---|---:|---|---:|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["size"], list(settings).index(r["setting"]))):
        s, p = row["summary"], row["paired_vs_none"] or {}
        lines.append(
            f"| {row['size']} | {row['setting']} | {s['n']} | {_f(s['mean'])} | "
            f"[{_f(s['ci_low'])}, {_f(s['ci_high'])}] | {_f(p.get('mean_diff'), '+.4f')} | "
            f"[{_f(p.get('ci_low'), '+.4f')}, {_f(p.get('ci_high'), '+.4f')}] | {_f(p.get('t_p'), '.3g')} | "
            f"{p.get('verdict', '')} |"
        )
    write_text(out / "report.md", "\n".join(lines) + "\n")
    _figure(rows, settings, context["majority_share"], metric, out / "learning-curve.png")


def _figure(rows: list[dict], settings: dict[str, str], majority: float, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for offset, setting in zip((0.97, 1.0, 1.03), settings, strict=False):
        mine = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["size"])
        if not mine:
            continue
        sizes = [r["size"] * offset for r in mine]  # a small shift keeps the error bars apart
        means = [r["summary"]["mean"] for r in mine]
        low = [r["summary"]["mean"] - (r["summary"]["ci_low"] or r["summary"]["mean"]) for r in mine]
        high = [(r["summary"]["ci_high"] or r["summary"]["mean"]) - r["summary"]["mean"] for r in mine]
        ax.errorbar(sizes, means, yerr=[low, high], marker="o", capsize=3, label=setting)
    ax.axhline(majority, color="grey", linestyle="--", linewidth=1, label="commonest label")
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["size"] for r in rows}), [str(s) for s in sorted({r["size"] for r in rows})])
    ax.minorticks_off()
    ax.set_xlabel("SICK training pairs")
    ax.set_ylabel(f"dev {metric} (mean, 95% t-interval)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _f(value, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sick"))
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", type=int, default=[500, 1000, 2000, 4500])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--subset-seed", type=int, default=0, help="the shuffle the subsets are cut from")
    parser.add_argument("--tuned", type=Path, help="results.json of an attnguide tune study on SICK")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("train_flags", nargs="*", help="after --: further attnguide train flags")
    args = parser.parse_args()
    args.dev = args.data / "SICK_trial.txt"
    subsets, full = write_subsets(
        args.data / "SICK_train.txt", args.sizes, args.subset_seed, args.output_dir / "data"
    )
    flags = {size: {BASELINE: ["--guide", "none"], DEFAULTS: ["--guide", "mdg+pdg"]} for size in args.sizes}
    settings = {BASELINE: "unguided", DEFAULTS: "MDG+PDG at the paper's default weights"}
    if args.tuned:
        tuned = tuned_flags(args.tuned, 1.0)
        if tuned is None:
            print(f"{args.tuned}: no finished guided trial yet; the tuned setting is left out", flush=True)
        else:
            settings[TUNED] = tuned[1] + (
                " (guide warm-up scaled by the subset's share of the pairs; chosen on this dev set, so"
                " its dev figures lean optimistic)"
            )
            for size in args.sizes:
                flags[size][TUNED] = tuned_flags(args.tuned, size / full)[0]
    context = {"train_flags": args.train_flags, "majority_share": majority_share(args.dev)}
    runs = {
        (setting, size, seed): args.output_dir / "runs" / f"n{size}" / setting / f"seed{seed}"
        for seed in args.seeds
        for size in args.sizes
        for setting in flags[size]
    }
    for wait in (False, True):  # first the runs no other copy holds, then those it held
        for (setting, size, seed), run_dir in runs.items():
            with claimed(run_dir, wait) as mine:
                if mine and not is_complete_run(run_dir):
                    train(run_dir, subsets[size], args, seed, flags[size][setting])
                    context["median_seconds"] = median_seconds(runs)
                    report(finished(runs, args.metric), settings, context, args.metric, args.output_dir)
    context["median_seconds"] = median_seconds(runs)
    report(finished(runs, args.metric), settings, context, args.metric, args.output_dir)
    print((args.output_dir / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
