"""The confirmation of ``attnguide tune``: the best setting on dev and the baseline trained again
with fresh seeds and compared with ``compare``'s paired statistics and verdict rule; where a test
file is given, each of those runs is evaluated on it once (the setting was chosen before any test
figure existed). The confirmation runs are the trials of a second study in the same storage, so
that the workers share them as they share the search."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import AttnguideError
from ..files import write_json
from ..rundir import is_complete_run
from .stats import paired_difference, summarize
from .tuning_storage import create_or_load, enqueue_retry, work_through, worker_identity
from .tuning_trials import TrialOptions, TuneSettings

logger = logging.getLogger("attnguide")

Evaluate = Callable[[Path, Path], dict[str, float]]
"""Evaluates a run directory on the test file, writing predictions to the given path."""


CONFIRMED = ("baseline", "best")


def confirm(
    settings: TuneSettings,
    search: Any,
    task: Any,
    trial_options: TrialOptions,
    guide: dict[str, Any],
    evaluate_test: Evaluate | None = None,
) -> dict[str, Any]:
    """Train the best setting and the baseline with ``settings.seeds`` and compare them seed by seed
    (``stats.paired_difference``: the verdict rule of ``compare``). Each run is a trial of a second
    study in the ``search`` study's storage (``open_confirmation``), shared by the workers as the
    search is: every run is trained once, by one of them, and one whose worker died is run again
    from its last checkpoint. With a test file each run is evaluated on it once, after its
    training: the setting was fixed before any test figure existed."""
    import optuna

    from .runner import remove_leftovers

    study = open_confirmation(settings, search, guide)

    def run_one(trial_id: int) -> None:
        trial = optuna.Trial(study, trial_id)
        _run_confirmation(trial, settings, task, trial_options, guide, evaluate_test)

    work_through(study, len(CONFIRMED) * len(settings.seeds), "run", run_one, wait_for_others=True)
    done = {
        (t.user_attrs["setting"], t.user_attrs["seed"]): t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    }
    runs = [(name, seed) for name in CONFIRMED for seed in settings.seeds]
    for name, seed in done:  # a failed run's retry resumes from its folder's: only a finished run's go
        for leftover in remove_leftovers(_confirmation_folder(settings, name, seed)):
            logger.info("removed %s, left by an interrupted confirmation run", leftover)
    missing = [f"{name} seed {seed}" for name, seed in runs if (name, seed) not in done]
    if missing:
        raise AttnguideError(f"confirmation: {', '.join(missing)} did not finish; run the command again")
    values = {name: {seed: done[name, seed].value for seed in settings.seeds} for name in CONFIRMED}
    result: dict[str, Any] = {
        "dev": _summaries(values),
        "paired": asdict(paired_difference(values["best"], values["baseline"])),
    }
    if evaluate_test is not None:
        test: dict[str, dict[int, float]] = {}
        for name, seed in runs:
            test.setdefault(name, {})[seed] = _test_value(settings, done[name, seed], evaluate_test)
        result["test"] = _summaries(test)
        result["test_paired"] = asdict(paired_difference(test["best"], test["baseline"]))
    return result


def _summaries(values: dict[str, dict[int, float]]) -> dict[str, Any]:
    return {name: {"values": v, **asdict(summarize(list(v.values())))} for name, v in values.items()}


def open_confirmation(settings: TuneSettings, search: Any, guide: dict[str, Any]) -> Any:
    """The confirmation's study, in the storage of the ``search`` study: one trial per (setting,
    seed), created by the first worker to get here; its name carries the seeds, so that asking for
    other seeds starts another (finished runs of the same seed are reused from their folders)."""
    name = f"{settings.study_name}-confirmation-seeds-{'-'.join(map(str, settings.seeds))}"
    study, created = create_or_load(search._storage, name)
    if not created:
        if study.user_attrs.get("guide") != guide:
            raise AttnguideError(
                f"study {name!r}: it confirms {study.user_attrs.get('guide')!r}, this command's best is "
                f"{guide!r} (trials added since it was confirmed?); use another --output-dir or "
                "--study-name, or --no-confirm"
            )
        return study
    study.set_user_attr("guide", guide)
    for setting in CONFIRMED:
        for seed in settings.seeds:
            study.enqueue_trial({}, user_attrs={"setting": setting, "seed": seed})
    study.set_user_attr("ready", True)
    return study


def _run_confirmation(
    trial: Any,
    settings: TuneSettings,
    task: Any,
    trial_options: TrialOptions,
    guide: dict[str, Any],
    evaluate_test: Evaluate | None,
) -> None:
    """Train one confirmation run (or read it, where its folder holds a finished one) and tell the
    study its dev metric; a run that fails is enqueued again and the error stops this worker."""
    import optuna

    from ..training.pipeline import run_training

    name, seed = trial.user_attrs["setting"], trial.user_attrs["seed"]
    trial.set_user_attr("worker", worker_identity())
    folder = _confirmation_folder(settings, name, seed)
    try:
        if is_complete_run(folder):
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        else:
            options = trial_options(guide if name == "best" else {"guides": "none"}, seed, folder)
            metrics = run_training(options, task.start(options))
        value = float(metrics[settings.metric])
        if evaluate_test is not None:
            trial.set_user_attr("test", _test_value(settings, trial, evaluate_test))
    except Exception as error:
        trial.set_user_attr("reason", str(error).splitlines()[0] if str(error) else type(error).__name__)
        trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        enqueue_retry(trial.study, trial, {})
        raise
    trial.study.tell(trial, value)
    logger.info("confirmation, %s, seed %d: dev %s %.4f", name, seed, settings.metric, value)


def _confirmation_folder(settings: TuneSettings, name: str, seed: int) -> Path:
    return settings.output_dir / "confirm" / name / f"seed{seed}"


def _test_value(settings: TuneSettings, trial: Any, evaluate_test: Evaluate) -> float:
    """A confirmation run's test metric: from its trial where its worker measured it, else from the
    kept metrics file, else measured now (once: the file is kept)."""
    if "test" in trial.user_attrs:
        return float(trial.user_attrs["test"])
    name, seed = trial.user_attrs["setting"], trial.user_attrs["seed"]
    kept = settings.output_dir / "test" / name / f"seed{seed}.metrics.json"
    if not kept.is_file():
        folder = _confirmation_folder(settings, name, seed)
        write_json(kept, evaluate_test(folder, kept.with_name(f"seed{seed}.predictions")))
    return float(json.loads(kept.read_text(encoding="utf-8"))[settings.metric])
