"""``attnguide eval``: evaluate a trained model on a data file of its task."""

from __future__ import annotations

import argparse
import json

from ..errors import AttnguideError
from ..rundir import check_finished_model, read_run
from .common import add_task_options, chosen_task, positive, quiet_libraries

BI_ENCODERS = ("embedding", "ranking (--encoder bi)")
"""The runs that are sentence-transformers bi-encoders: each task evaluates the other's too (the
ranking task takes any bi-encoder, even a zero-shot one)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model on a data file")
    p.add_argument("--model", required=True, help="a run directory written by attnguide train")
    p.add_argument("--data", required=True, help="data file to evaluate on")
    p.add_argument(
        "--output", help="per-example predictions, JSON lines (default: <data name>.predictions.jsonl here)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
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
    print(json.dumps(task.evaluate_file(args), indent=2))
    return 0
