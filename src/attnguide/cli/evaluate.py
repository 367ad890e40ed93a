"""``attnguide eval``: evaluate a trained model on a data file of its task."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from ..errors import AttnguideError
from ..rundir import check_finished_model, read_run
from ..tasks.protocol import EvalOptions
from .common import chosen_task, positive, quiet_libraries
from .flags import add_flags, add_task_options, options_from_args

BI_ENCODERS = ("embedding", "ranking (--encoder bi)")
"""The runs that are sentence-transformers bi-encoders: each task evaluates the other's too (the
ranking task takes any bi-encoder, even a zero-shot one)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model on a data file")
    add_flags(p, EvalOptions, tuple(f.name for f in fields(EvalOptions)))
    add_task_options(p, "eval", "the model's task (default: the task it was trained for)")
    p.set_defaults(func=run, command_parser=p)


def trained_as(model: str) -> str | None:
    """What the run directory ``model`` was trained as (its task, the ranking ones told apart by their
    encoder); None for a model that ``attnguide train`` did not write."""
    run = read_run(model) or {}
    task = run.get("task")
    if task == "ranking":
        return "ranking (--encoder bi)" if run.get("encoder") == "bi" else "ranking"
    return task if isinstance(task, str) else None


def check_model_task(model: str, task: str) -> None:
    """Refuse to evaluate a run as a task it was not trained for (a classifier's logits are not
    scores); a bi-encoder serves both bi-encoder tasks, and a model without run.json passes."""
    trained = trained_as(model)
    if trained is None or trained.split()[0] == task:
        return
    if trained in BI_ENCODERS and task in ("embedding", "ranking"):
        return
    raise AttnguideError(
        f"{model}: a run trained with --task {trained}, which cannot be evaluated with --task {task}; "
        f"leave out --task or give --task {trained.split()[0]}"
    )


def run(args: argparse.Namespace) -> int:
    task = chosen_task(args)
    positive(args, "batch_size", "max_length")
    check_finished_model(args.model)
    check_model_task(args.model, task.name)
    quiet_libraries()
    print(json.dumps(task.evaluate_file(options_from_args(task.eval_options, args)), indent=2))
    return 0
