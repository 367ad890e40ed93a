"""``attnguide demo``: the offline demo, MiniLM trained without and with MDG+PDG on template NLI data."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import quiet_libraries


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="offline demo: template NLI data, MiniLM trained without and with MDG+PDG"
    )
    p.add_argument(
        "--output-dir", default="attnguide-demo", help="where to write (default: ./attnguide-demo)"
    )
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--train-size", type=int, default=1200, help="template training pairs (default: 1200)")
    p.add_argument("--epochs", type=float, default=2.0, help="epochs per run (default: 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.set_defaults(func=run, command_parser=p)


def run(args: argparse.Namespace) -> int:
    quiet_libraries()
    from ..experiments.offline_demo import run_demo

    previous_demo = (Path(args.output_dir) / "summary.json").is_file()
    print(
        run_demo(
            args.output_dir,
            model=args.model,
            train_size=args.train_size,
            epochs=args.epochs,
            overwrite=args.overwrite or previous_demo,
        )
    )
    return 0
