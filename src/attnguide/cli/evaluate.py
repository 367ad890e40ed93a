"""``attnguide eval``: evaluate a trained model on a data file of its task."""

from __future__ import annotations

import argparse
import json

from .common import add_task_options, chosen_task, positive, quiet_libraries


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


def run(args: argparse.Namespace) -> int:
    task = chosen_task(args)
    positive(args, "batch_size", "max_length")
    quiet_libraries()
    print(json.dumps(task.evaluate_file(args), indent=2))
    return 0
