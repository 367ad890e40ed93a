"""``attnguide compare``: a grid of training runs over data sets × models × guide settings × seeds,
compared with the unguided baseline. The grid's keys, flags included, come from ``experiments.grid``."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import AttnguideError
from ..experiments.grid import DATA_KEYS, build_grid, sweep_keys

_SINGLE_KEYS = ("format", "task", "metric", "text_a", "text_b", "label")


def _flag_keys() -> tuple[str, ...]:
    """The grid keys that ``compare`` takes as flags too; the rest of the YAML schema is in build_grid."""
    return (*(k for k in DATA_KEYS if k != "name"), *sweep_keys(), "output_dir")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="run a grid over data sets × models × guide settings × seeds and compare with the baseline",
        description="Train every cell of a grid (resumable), then report per setting mean ± std over "
        "seeds with a 95% interval and the paired difference from the unguided baseline; choose the "
        "best setting on dev and, where a test file is given, evaluate it and the baseline on test.",
    )
    p.add_argument("--config", help="grid YAML file; the flags below replace its keys of the same name")
    for key in _flag_keys():
        flag = "--" + key.replace("_", "-")
        if key in _SINGLE_KEYS or key == "output_dir":
            p.add_argument(
                flag, help=f"grid key {key}" + (" (for every --train file)" if key in _SINGLE_KEYS else "")
            )
        elif key in ("train", "dev", "test"):
            p.add_argument(flag, nargs="+", help=f"grid key {key}: data files, several paired by position")
        else:
            p.add_argument(flag, nargs="+", help=f"grid key {key}: one or more values")
    p.add_argument(
        "--dry-run", action="store_true", help="list the cells and which are finished; run nothing"
    )
    p.set_defaults(func=run, command_parser=p)


def run(args: argparse.Namespace) -> int:
    from ..experiments.runner import run_grid

    overrides: dict[str, tuple[Any, str]] = {}
    for key in _flag_keys():
        value = getattr(args, key)
        if value is not None:
            single = isinstance(value, list) and len(value) == 1
            overrides[key] = (value[0] if single else value, "--" + key.replace("_", "-"))
    if args.config is None and not overrides:
        raise AttnguideError("give a grid: --config grid.yaml, or --train, --dev and --output-dir")
    grid = build_grid(args.config, overrides)
    results = run_grid(grid, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    print((grid.output_dir / "results.md").read_text(encoding="utf-8"))
    return 1 if any(r.status != "finished" for r in results) else 0
