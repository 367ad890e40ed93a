"""``attnguide tune``: search the guiding settings on dev with Optuna, confirm the best over fresh
seeds, and say whether guiding helps (``experiments.tuning_*``). Every option of ``train`` is taken and
passed on to each trial's run."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AttnguideError
from ..guiding.config import GuideConfig
from ..rundir import file_sha256
from .common import chosen_task, quiet_libraries
from .flags import options_from_args
from .train import add_train_arguments, train_options

PRUNERS = ("median", "halving", "none")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search the guiding settings on dev (Optuna), confirm the best over fresh seeds, give a verdict",
        description="Every train option is taken and passed on to each trial; the guide options are what "
        "the study searches (see --space).",
    )
    add_train_arguments(p, output_help="the study's directory: its trials, confirmation runs and report")
    s = p.add_argument_group("tuning")
    s.add_argument(
        "--trials",
        type=_whole(1),
        required=True,
        help="trials in the study, trial 0 the unguided baseline; a larger number given to a study "
        "already started continues it to that many",
    )
    s.add_argument(
        "--timeout", type=_seconds, help="stop starting trials after this many seconds (a number > 0)"
    )
    s.add_argument(
        "--space", help="YAML file narrowing or widening the search space (keys: guides, mdg_weight, ...)"
    )
    s.add_argument(
        "--pruner",
        default="median",
        choices=PRUNERS,
        help="stop hopeless trials after an epoch (default: median)",
    )
    s.add_argument(
        "--prune-after",
        type=_whole(1),
        default=1,
        metavar="N",
        help="evaluations (epochs) a trial completes before the pruner may stop it (default: 1; on a "
        "small dev set the first epoch's figure can say little about the last, see docs/RESULTS.md)",
    )
    s.add_argument(
        "--storage",
        help="Optuna storage URL shared by several workers, e.g. postgresql://user@host/db "
        "(default: a journal file in --output-dir)",
    )
    s.add_argument(
        "--study-name", default="attnguide", help="the study's name in the storage (default: attnguide)"
    )
    s.add_argument(
        "--seeds",
        type=_whole(2, "a paired comparison needs two"),
        default=3,
        help="fresh seeds that confirm the best setting against the baseline (default: 3)",
    )
    s.add_argument("--test", help="test file: the confirmed best and the baseline are evaluated on it once")
    s.add_argument("--metric", help="dev metric to maximise (default: the task's first, e.g. accuracy)")
    s.add_argument("--no-confirm", action="store_true", help="stop after the search")
    p.set_defaults(func=run, command_parser=p)


def _whole(minimum: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            because = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}{because}, got {text!r}")
        return value

    return convert


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    task = chosen_task(args)
    metric = args.metric or task.metrics[0]
    if metric not in task.metrics:
        raise AttnguideError(
            f"--metric: expected one of {', '.join(task.metrics)} (higher is better), got {metric!r}"
        )
    if args.dev is None and args.dev_split is None:
        raise AttnguideError("tune chooses on dev: give --dev FILE (or --dev-split)")
    if args.test is not None and not args.no_confirm and not Path(args.test).is_file():
        raise AttnguideError(f"--test {args.test}: no such file")  # before the search, not after it
    from ..experiments.runner import check_writable_dir
    from ..experiments.tuning_confirmation import confirm
    from ..experiments.tuning_report import write_results
    from ..experiments.tuning_space import SearchSpace
    from ..experiments.tuning_trials import TuneSettings, best_trial, run_study
    from ..models import default_model_path, model_layers

    space = SearchSpace.from_file(args.space, args.capture)
    output_dir = Path(args.output_dir)

    given = train_options(task, args)
    # every trial reads these files: a bad line is refused once, here, not by each trial in turn
    task.start(dataclasses.replace(given)).read()  # a copy: reading may fill in options (a label range)

    def trial_options(guide: dict[str, Any], seed: int, folder: Path) -> Any:
        """The options of one trial: this command's, with the trial's guide settings, seed and folder."""
        return dataclasses.replace(
            given,
            guide=GuideConfig(**{**given.guide.to_dict(), **guide}),
            seed=seed,
            output_dir=str(folder),
            resume=True,
            overwrite=False,
        )

    base = trial_options({"guides": "none"}, args.seed, output_dir / "trials" / "identity").settings()
    space = space.fitted_to(model_layers(base["model"] or default_model_path()))
    identity = {
        "task": task.name,
        "metric": metric,
        "settings": {k: v for k, v in base.items() if k != "guide"},
        **{
            f"{split}_sha256": file_sha256(path)
            for split, path in (("train", args.train), ("dev", args.dev))
            if path
        },
    }
    settings = TuneSettings(
        output_dir=output_dir,
        trials=args.trials,
        metric=metric,
        identity=identity,
        timeout=args.timeout,
        pruner=args.pruner,
        prune_after=args.prune_after,
        storage=args.storage,
        study_name=args.study_name,
        seeds=tuple(range(args.seed + 1, args.seed + 1 + args.seeds)),
        space=space,
    )
    check_writable_dir(output_dir)
    quiet_libraries()
    study = run_study(settings, task, trial_options, wait_for_others=not args.no_confirm)
    best = best_trial(study)
    unfinished = [t for t in study.get_trials(deepcopy=False) if not t.state.is_finished()]
    confirmation = None
    if args.no_confirm:
        unconfirmed = "--no-confirm"
    elif unfinished:
        unconfirmed = f"{len(unfinished)} trials still run or wait (--timeout): run the command again"
    elif best is None:
        unconfirmed = "no guided trial finished"
    else:
        evaluate_test = _test_evaluator(args, task) if args.test else None
        confirmation = confirm(settings, study, task, trial_options, best.user_attrs["guide"], evaluate_test)
        unconfirmed = ""
    verdict = write_results(settings, study, confirmation, unconfirmed)
    print(f"{verdict}\nreport: {output_dir / 'report.md'}")
    return _no_trial_finished(study) if not unfinished else 0


def _no_trial_finished(study: Any) -> int:
    """0 where a trial finished; else the first failed trial's error as one line, exit code 2 where
    it was the input's (a data file's line, say: every trial fails on it) and 1 otherwise."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "COMPLETE" for t in trials):
        return 0
    failed = next((t for t in trials if t.state.name == "FAIL"), None)
    if failed is None:
        message = "no trial finished: every trial was pruned"
    else:
        message = f"no trial finished; trial {failed.number} failed: {failed.user_attrs.get('reason', '?')}"
    if failed is not None and failed.user_attrs.get("input_error"):
        raise AttnguideError(message)
    print(f"attnguide: error: {message}", file=sys.stderr)
    return 1


def _test_evaluator(args: argparse.Namespace, task: Any):
    """Evaluates a run directory on ``--test`` as ``attnguide eval`` would, with this command's data
    options."""

    def evaluate_test(run_dir: Path, output: Path) -> dict[str, float]:
        options = options_from_args(
            task.eval_options,
            args,
            model=str(run_dir),
            data=args.test,
            output=str(output.with_suffix(".jsonl")),
            batch_size=args.eval_batch_size,
        )
        return task.evaluate_file(options)

    return evaluate_test
