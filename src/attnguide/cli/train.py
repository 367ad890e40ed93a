"""``attnguide train``: fine-tune an encoder for a task, with or without attention guiding."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import AttnguideError
from ..tasks import Task
from ..training.options import (
    LORA_SETTINGS,
    RECIPE_SETTINGS,
    RECIPES,
    TrainOptions,
    lora_options,
    option_default,
    paper_epochs,
)
from .common import add_guide_options, chosen_task, guide_config, quiet_libraries
from .flags import add_flags, add_task_options, options_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune an encoder for a task, with or without attention guiding")
    add_train_arguments(p, output_help="run directory to write")
    p.set_defaults(func=run, command_parser=p)


DATA = ("model", "train", "dev", "dataset", "train_split", "dev_split")
TRAINING = (
    "recipe", "epochs", "batch_size", "eval_batch_size", "lr", "weight_decay", "warmup_ratio", "lr_scheduler",
    "max_length", "select_metric", "early_stopping", "seed", "logging_steps", "report_to", "bf16",
    "activation_checkpointing",
)  # fmt: skip
OUTPUT = ("output_dir", "overwrite", "keep_checkpoints")
ROBUSTNESS = ("resume", "save_steps", "sampling", "nonfinite")


def add_train_arguments(p: argparse.ArgumentParser, output_help: str) -> None:
    """Every option of ``attnguide train`` (``tune`` takes them all too), from the fields of
    ``TrainOptions`` and the tasks' options, in the help's order."""
    add_flags(p, TrainOptions, DATA)
    add_task_options(p, "train", "what to train")
    add_guide_options(p)
    add_flags(
        p.add_argument_group("training (defaults: the --recipe's; a flag given wins)"), TrainOptions, TRAINING
    )
    adapters = p.add_argument_group(
        "adapters (LoRA, with PEFT: train low-rank updates instead of every weight)"
    )
    add_flags(adapters, TrainOptions, LORA_SETTINGS)
    add_flags(p, TrainOptions, OUTPUT, output_dir={"help": output_help})
    add_flags(p.add_argument_group("robustness"), TrainOptions, ROBUSTNESS)


def train_options(task: Task, args: argparse.Namespace) -> TrainOptions:
    """The task's training options from the flags: the guide settings, the ``--recipe``'s settings,
    LoRA's and ``--skip-nonfinite`` made from theirs, every other option from its own flag."""
    return options_from_args(
        task.train_options,
        args,
        guide=guide_config(args),
        **recipe_settings(args),
        **lora_options({name: getattr(args, name) for name in LORA_SETTINGS}),
        nonfinite="skip" if args.skip_nonfinite else "stop",
    )


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
    options = train_options(task, args)
    quiet_libraries()
    from ..training.pipeline import run_training

    metrics = run_training(options, task.start(options))
    if metrics:  # empty on the non-main processes of a distributed run
        print(json.dumps(metrics, indent=2))
    return 0
