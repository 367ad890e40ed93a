"""``attnguide train``: fine-tune an encoder for a task, with or without attention guiding."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import AttnguideError
from ..training.options import (
    LORA_SETTINGS,
    LR_SCHEDULERS,
    RECIPE_SETTINGS,
    RECIPES,
    lora_options,
    option_default,
    paper_epochs,
)
from .common import add_guide_options, add_task_options, chosen_task, guide_config, quiet_libraries


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune an encoder for a task, with or without attention guiding")
    add_train_arguments(p, output_help="run directory to write")
    p.set_defaults(func=run, command_parser=p)


def add_train_arguments(p: argparse.ArgumentParser, output_help: str) -> None:
    """Every option of ``attnguide train`` (``tune`` takes them all too)."""
    p.add_argument("--model", help="model directory or Hub id (default: the packaged MiniLM-L6-H384)")
    p.add_argument("--train", help="training data file")
    p.add_argument("--dev", help="dev data file: evaluated each epoch and at the end")
    p.add_argument(
        "--dataset", help="a HuggingFace dataset name or a local directory saved with save_to_disk"
    )
    p.add_argument("--train-split", default="train", help="split of --dataset to train on (default: train)")
    p.add_argument("--dev-split", help="split of --dataset to evaluate on, e.g. validation")
    add_task_options(p, "train", "what to train")
    add_guide_options(p)
    t = p.add_argument_group("training (defaults: the --recipe's; a flag given wins)")
    t.add_argument(
        "--recipe",
        default="attnguide",
        choices=tuple(RECIPES),
        help="preset of the settings below: attnguide (3 epochs, batch 32, lr 5e-5 with 10%% warm-up and "
        "linear decay, weight decay 0.01, 128 tokens, the last checkpoint) or paper (the authors' "
        "released code: Adam without weight decay, constant lr 1e-5, batch 64, 256 tokens, 20 epochs "
        "(5 for ranking), the checkpoint with the best dev metric)",
    )
    t.add_argument("--epochs", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--eval-batch-size", type=int, default=64)
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--warmup-ratio", type=float)
    t.add_argument("--lr-scheduler", choices=LR_SCHEDULERS, help="learning-rate schedule after warm-up")
    t.add_argument("--max-length", type=int, help="tokens per pair; longer pairs are truncated")
    t.add_argument(
        "--select-best",
        nargs="?",
        const="",
        metavar="METRIC",
        help="evaluate on dev after each epoch and keep the best checkpoint by METRIC (default: the "
        "task's first metric); 'last' keeps the last one (the attnguide recipe's default)",
    )
    t.add_argument(
        "--early-stopping",
        type=int,
        metavar="EPOCHS",
        help="with --select-best, stop after this many epochs without improvement",
    )
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--logging-steps", type=int, default=20)
    t.add_argument("--report-to", default="none", help="Trainer loggers, e.g. tensorboard (default: none)")
    t.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs from Ampere on)")
    t.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute each layer in the backward pass instead of keeping its activations: less memory, "
        "about a third more time; the same result",
    )
    a = p.add_argument_group("adapters (LoRA, with PEFT: train low-rank updates instead of every weight)")
    a.add_argument(
        "--lora-r", type=int, help="LoRA rank; given, a LoRA adapter is trained instead of all weights"
    )
    a.add_argument("--lora-alpha", type=float, help="LoRA scaling α (default: 16)")
    a.add_argument("--lora-dropout", type=float, help="dropout on the LoRA input (default: 0.1)")
    a.add_argument(
        "--lora-targets",
        help="comma-separated names of the linear layers to adapt (default: query,value, as in BERT)",
    )
    p.add_argument("--output-dir", required=True, help=output_help)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep the last checkpoint in the finished run"
    )
    r = p.add_argument_group("robustness")
    r.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its newest checkpoint"
    )
    r.add_argument("--save-steps", type=int, help="checkpoint every N steps (default: every epoch)")
    r.add_argument(
        "--sampling",
        default="random",
        choices=("random", "sequential", "group_by_length"),
        help="order of training examples (default: random, seeded)",
    )
    r.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="skip a batch whose loss is NaN or infinite instead of stopping (one process only)",
    )


def common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainOptions`` keyword arguments that every task takes from the command line."""
    return {
        "output_dir": args.output_dir,
        "train": args.train,
        "dev": args.dev,
        "model": args.model,
        "dataset": args.dataset,
        "train_split": args.train_split,
        "dev_split": args.dev_split,
        "guide": guide_config(args),
        **recipe_settings(args),
        "eval_batch_size": args.eval_batch_size,
        "seed": args.seed,
        "logging_steps": args.logging_steps,
        "report_to": args.report_to,
        "bf16": args.bf16,
        "activation_checkpointing": args.activation_checkpointing,
        "save_steps": args.save_steps,
        **lora_options({name: getattr(args, name) for name in LORA_SETTINGS}),
        "sampling": args.sampling,
        "nonfinite": "skip" if args.skip_nonfinite else "stop",
        "overwrite": args.overwrite,
        "resume": args.resume,
        "keep_checkpoints": args.keep_checkpoints,
    }


def recipe_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the ``--recipe`` presets, each from its flag where given, else from the recipe."""
    task = chosen_task(args)
    preset = dict(RECIPES[args.recipe])
    if args.recipe == "paper":
        preset["epochs"] = paper_epochs(task.name)
    values = {
        name: getattr(args, name)
        if getattr(args, name) is not None
        else preset.get(name, option_default(name))
        for name in RECIPE_SETTINGS
    }
    chosen = args.select_best
    if chosen is None:
        chosen = "" if preset.get("select_best") else "last"
    if chosen == "last":
        values["select_metric"] = None
    elif chosen == "" or chosen in task.metrics:
        values["select_metric"] = chosen or task.metrics[0]
    else:
        raise AttnguideError(
            f"--select-best {chosen}: the {task.name} task chooses by one of "
            f"{', '.join(task.metrics)}, or last"
        )
    return {**values, "early_stopping": args.early_stopping, "recipe": args.recipe}


def run(args: argparse.Namespace) -> int:
    task = chosen_task(args)
    options = task.train_options(args, common_options(args))
    quiet_libraries()
    from ..training.pipeline import run_training

    metrics = run_training(options, task.start(options))
    if metrics:  # empty on the non-main processes of a distributed run
        print(json.dumps(metrics, indent=2))
    return 0
