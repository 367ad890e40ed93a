"""``attnguide study`` and ``attnguide forest``: a designed study over several grids, and the forest
plot and table over any grids' outputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..experiments.study import Tune


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study (several compare grids, resumably) and write its forest plot and table",
        description="Run every grid of a study file into OUTPUT/<grid name>/ (resumable: finished "
        "cells are kept), then write forest.md/.csv/.tex/.png over all of them. A tune the study "
        "lists runs into OUTPUT/tune-<name>/ before its grid, and its best setting, once all its "
        "trials have ended, joins that grid as the arm 'tuned'.",
    )
    p.add_argument("--config", required=True, help="study YAML file (output_dir, title, grids, split, tunes)")
    p.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help="run only these grids (by name) and tunes (tune-<name>); a grid's tune runs only if named",
    )
    p.add_argument("--report-only", action="store_true", help="run nothing; remake the report from disk")
    p.set_defaults(func=run_study)

    f = sub.add_parser(
        "forest",
        help="one forest plot and table (Markdown, CSV, LaTeX) over several grids' outputs",
        description="Read the results.json of compare grids (or study grids) and write the paired "
        "difference from the unguided baseline of every guided setting, with its 95%% interval, "
        "Holm-corrected p-value and the seed-noise band, as forest.png, .md, .csv and .tex.",
    )
    f.add_argument("grids", nargs="+", metavar="GRID", help="a grid's output directory or its results.json")
    f.add_argument("--names", nargs="+", help="a name per grid (default: folder names)")
    f.add_argument(
        "--split",
        choices=("auto", "dev", "test"),
        default="auto",
        help="compare on dev or test (default auto: test for a grid with test_all: true, else dev)",
    )
    f.add_argument("--title", default="attention guiding against the unguided baseline")
    f.add_argument("--output-dir", required=True, help="directory to write forest.* into")
    f.set_defaults(func=run_forest)


def run_study(args: argparse.Namespace) -> int:
    from ..experiments.study import read_study
    from ..experiments.study import run_study as run

    study = read_study(args.config)
    unfinished = run(study, args.only, args.report_only, check_tune=_check_tune)
    report = study.output_dir / "forest.md"
    if report.is_file():
        print(report.read_text(encoding="utf-8"))
    return 1 if unfinished else 0


def _check_tune(tune: Tune, command: list[str]) -> None:
    """A tune's command line as ``attnguide tune`` parses it (no abbreviated flags, so that none
    reaches a setting the study sets), and its search space for the capture it asks for."""
    from ..errors import AttnguideError
    from ..experiments.tuning_space import SearchSpace
    from . import UsageError, build_parser

    try:
        parsed = build_parser(allow_abbrev=False).parse_args(command)
    except UsageError as error:
        raise AttnguideError(f"{tune.where}: options: {error}") from None
    try:
        SearchSpace.from_file(tune.space, parsed.capture)
    except AttnguideError as error:
        raise AttnguideError(f"{tune.where}: space: {error}") from None


def run_forest(args: argparse.Namespace) -> int:
    from ..errors import AttnguideError
    from ..experiments.forest import collect, write_forest
    from ..experiments.runner import check_writable_dir

    if args.names and len(args.names) != len(args.grids):
        raise AttnguideError(f"--names: {len(args.names)} names for {len(args.grids)} grids")
    out = Path(args.output_dir)
    check_writable_dir(out)
    rows = collect([Path(g) for g in args.grids], args.split, args.names)
    if not rows:
        raise AttnguideError(
            f"no guided setting with a baseline in {', '.join(args.grids)}: nothing to plot yet"
        )
    write_forest(rows, out, args.title)
    print((out / "forest.md").read_text(encoding="utf-8"))
    return 0
