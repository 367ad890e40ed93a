"""SICK relatedness with sentence-transformers' own CrossEncoderTrainer and attnguide's GuidedLoss,
to set beside ``attnguide train --task regression`` (benchmarks/grids/sick-relatedness.yaml): do the
two routes to a guided cross-encoder agree?

The packaged MiniLM as a ``CrossEncoder`` with one output, trained on SICK_train's relatedness
scores scaled to 0-1 with the library's ``BinaryCrossEntropyLoss`` (its recipe for scored pairs),
wrapped in ``GuidedLoss`` where guided; the same epochs, batch size, learning rate, warm-up ratio and
maximum length as the grid's cells; Pearson and Spearman of ``CrossEncoder.predict`` against the
trial scores. One JSON file per (guide, seed) under ``--output-dir``: a finished one is not run
again, so the script resumes after an interruption. Prints a Markdown table at the end.

    python benchmarks/cross_encoder_sick.py --output-dir runs/cross-encoder-sick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from scipy.stats import pearsonr, spearmanr

from attnguide.experiments.stats import paired_difference


def read_sick(path: Path) -> tuple[list[list[str]], list[float]]:
    """(sentence A, sentence B) pairs and relatedness scores of a SICK file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    a, b, score = (header.index(k) for k in ("sentence_A", "sentence_B", "relatedness_score"))
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    return [[r[a], r[b]] for r in rows], [float(r[score]) for r in rows]


def train_one(args: argparse.Namespace, guides: str, seed: int) -> dict:
    """One cross-encoder run: train, predict trial, correlate."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from attnguide import GuideConfig
    from attnguide.models import default_model_path
    from attnguide.sentence_transformers import GuidedLoss

    train_pairs, train_scores = read_sick(args.data / "SICK_train.txt")
    dev_pairs, dev_scores = read_sick(args.data / "SICK_trial.txt")
    data = Dataset.from_dict(
        {
            "sentence_A": [p[0] for p in train_pairs],
            "sentence_B": [p[1] for p in train_pairs],
            "label": [(s - 1) / 4 for s in train_scores],
        }
    )
    model = CrossEncoder(default_model_path(), num_labels=1, max_length=args.max_length)
    loss = BinaryCrossEntropyLoss(model)
    config = GuideConfig(guides=guides)
    if config.active:
        loss = GuidedLoss(model, loss, guide_config=config)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        training = CrossEncoderTrainingArguments(
            output_dir=scratch, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr, warmup_steps=0.1, weight_decay=0.01, seed=seed, save_strategy="no",
            report_to="none", logging_steps=50, disable_tqdm=True,
        )  # fmt: skip
        CrossEncoderTrainer(model=model, args=training, train_dataset=data, loss=loss).train()
    seconds = time.perf_counter() - started
    predicted = model.predict(dev_pairs, batch_size=64, show_progress_bar=False)
    return {
        "guides": guides,
        "seed": seed,
        "pearson": float(pearsonr(predicted, dev_scores)[0]),
        "spearman": float(spearmanr(predicted, dev_scores)[0]),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sick"))
    parser.add_argument("--guides", nargs="+", default=["none", "mdg+pdg"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        for guides in args.guides:
            path = args.output_dir / f"{guides}-seed{seed}.json"
            if not path.is_file():
                result = train_one(args, guides, seed)
                partial = path.with_suffix(".partial")
                partial.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
                os.replace(partial, path)
                print(json.dumps(result), flush=True)
            results.append(json.loads(path.read_text(encoding="utf-8")))
    print("\n| CrossEncoderTrainer + GuidedLoss | Pearson | Spearman | per seed (Pearson) |")
    print("| --- | ---: | ---: | --- |")
    for guides in args.guides:
        rows = [r for r in results if r["guides"] == guides]
        pearson = [r["pearson"] for r in rows]
        spearman = [r["spearman"] for r in rows]
        spread = statistics.stdev(pearson) if len(pearson) > 1 else 0.0
        seeds = ", ".join(f"{p:.4f}" for p in pearson)
        print(
            f"| {guides} | {statistics.mean(pearson):.4f} ± {spread:.4f} | "
            f"{statistics.mean(spearman):.4f} | {seeds} |"
        )
    baseline = {r["seed"]: r["pearson"] for r in results if r["guides"] == "none"}
    for guides in args.guides:
        if guides != "none" and baseline:
            values = {r["seed"]: r["pearson"] for r in results if r["guides"] == guides}
            paired = paired_difference(values, baseline)
            print(
                f"\n{guides} against none, Pearson, paired over {paired.n} seeds (compare's rule): "
                f"Δ {paired.mean_diff:+.4f}, 95% bootstrap interval [{paired.ci_low:+.4f}, "
                f"{paired.ci_high:+.4f}], paired t-test p {paired.t_p:.3g}: {paired.verdict}"
            )


if __name__ == "__main__":
    main()
