"""The search of ``attnguide tune``: an Optuna study over the guiding settings on dev.

Trial 0 is always the unguided baseline; the others draw their setting from the search space
(``tuning_space``). Each trial is one training run on the same training settings and seed; after
each evaluation on dev it reports the task's metric, and a pruner (median or successive halving)
stops trials that cannot catch up. Trials are created once, when the study is, so that workers
together run exactly the number asked for and none twice (``tuning_storage``). The same command with
a larger ``--trials`` continues the study to that many.

A trial that fails, for whatever reason (a data file's bad line, a non-finite loss, a bug), is
marked failed with its reason (``trials.csv``, ``report.md``) and the study goes on with the next:
the data is read per trial, so bad data fails every trial alike. When no trial finished, the
command ends with the first failed trial's reason as its error line (exit code 2 where that was an
input error, 1 otherwise). The ``.partial`` directories of trials that ended (a killed trial's,
which its retry does not continue) are removed when a worker's search ends.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AttnguideError
from .tuning_space import SearchSpace
from .tuning_storage import create_or_load, enqueue_retry, open_storage, work_through, worker_identity

logger = logging.getLogger("attnguide")


@dataclass
class TuneSettings:
    """What a study is: where it lives, how many trials, the metric, and what it must match when
    continued (``identity``: the task, the data's hashes and the training settings)."""

    output_dir: Path
    trials: int
    metric: str
    identity: dict[str, Any]
    timeout: float | None = None
    pruner: str = "median"
    prune_after: int = 1
    storage: str | None = None
    study_name: str = "attnguide"
    seeds: tuple[int, ...] = (1, 2, 3)
    space: SearchSpace = field(default_factory=SearchSpace)


def report_evaluation(trial: Any, task_run: Any, metric: str) -> Any:
    """A Trainer callback: after each evaluation of a trial's run, measure the task's metric on dev,
    report it to the trial and stop the run if the pruner says so (``optuna.TrialPruned``). The pruner
    is not asked about the unguided baseline, every trial's reference, nor after the last evaluation,
    when the run has trained to its end and stopping it would save nothing."""
    import optuna
    from transformers import TrainerCallback

    baseline = trial.user_attrs.get("baseline", False)

    class ReportEvaluation(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
            with tempfile.TemporaryDirectory() as scratch:
                value = task_run.evaluate(model, processing_class, state.log_history, Path(scratch))[metric]
            epoch = round(state.epoch or 0)
            trial.report(value, epoch)
            trial.set_user_attr(f"dev_{metric}_epoch{epoch}", value)
            if baseline or state.global_step >= state.max_steps:
                return
            if trial.should_prune():
                trial.set_user_attr("reason", f"pruned after epoch {epoch}: dev {metric} {value:.4f}")
                raise optuna.TrialPruned()

    return ReportEvaluation()


def make_pruner(name: str, prune_after: int = 1) -> Any:
    """Optuna's pruner of that name, which may stop a trial from its ``prune_after``-th evaluation on
    (the median pruner once three trials have finished)."""
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=prune_after),
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=prune_after),
        "none": optuna.pruners.NopPruner,
    }[name]()


def open_study(settings: TuneSettings) -> Any:
    """The study of ``settings``: created with its trials (trial 0 the baseline), or loaded and
    checked against this command's task, data and training settings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(settings.pruner, settings.prune_after)
    study, created = create_or_load(
        open_storage(settings.storage, settings.output_dir), settings.study_name, pruner
    )
    if not created:
        _check_identity(study, settings)
        _extend(study, settings.trials)
        _rerun_a_pruned_baseline(study)
        return study
    study.set_user_attr("identity", settings.identity)
    study.set_user_attr("space", settings.space.to_dict())
    study.enqueue_trial({}, user_attrs={"baseline": True})
    for _ in range(settings.trials - 1):
        study.enqueue_trial({})
    study.set_user_attr("ready", True)
    return study


def planned_trials(study: Any) -> int:
    """How many trials the study was asked for: its trials that are not a retry of another, a slot
    enqueued twice counted once (the trials made with the study have no slot: their number)."""
    trials = study.get_trials(deepcopy=False)
    return len({t.user_attrs.get("slot", t.number) for t in trials if "retry_of" not in t.user_attrs})


def _extend(study: Any, trials: int) -> None:
    """Continue a study to ``trials`` trials: enqueue the ones it lacks, each with its ``slot`` (its
    place in the plan), so that a trial that two workers extending the study at once both enqueued
    runs once (``_duplicate_of``). A smaller number than the study has leaves it as it is."""
    planned = planned_trials(study)
    if trials < planned:
        logger.info("the study has %d trials; --trials %d leaves it as it is", planned, trials)
    for slot in range(planned, trials):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    if trials > planned:
        logger.info("the study continues from %d to %d trials", planned, trials)


def _rerun_a_pruned_baseline(study: Any) -> None:
    """Run the unguided baseline again where an earlier attnguide pruned it (it could, when the
    baseline ran after guided trials, as a retry does): a study needs its reference to the end.
    Enqueued under a ``slot`` of its own, so that of two workers opening the study together one runs it."""
    import optuna

    baselines = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
    latest = baselines[-1] if baselines else None
    if latest is None or latest.state != optuna.trial.TrialState.PRUNED:
        return  # finished, running, waiting, or failed (a retry is enqueued where it may run again)
    reason = "the unguided baseline was pruned (attnguide no longer prunes it): run again to its end"
    logger.info("trial %d: %s", latest.number, reason)
    enqueue_retry(study, latest, {"retry_reason": reason, "slot": f"baseline after trial {latest.number}"})


def _duplicate_of(trial: Any) -> int | None:
    """The number of an earlier trial enqueued for the same ``slot`` as this one, if any."""
    slot = trial.user_attrs.get("slot")
    if slot is None:
        return None
    earlier = (
        t.number
        for t in trial.study.get_trials(deepcopy=False)
        if t.number < trial.number and t.user_attrs.get("slot") == slot
    )
    return next(earlier, None)


def _check_identity(study: Any, settings: TuneSettings) -> None:
    saved = study.user_attrs.get("identity", {})
    for key in sorted(set(saved) | set(settings.identity)):
        if saved.get(key) != settings.identity.get(key):
            raise AttnguideError(
                f"study {settings.study_name!r}: its {key} differs from this command's "
                f"({saved.get(key)!r} there, {settings.identity.get(key)!r} here); use another --output-dir "
                "or --study-name"
            )


TrialOptions = Callable[[dict[str, Any], int, Path], Any]
"""Makes a trial's ``TrainOptions`` from its guide settings, seed and run directory."""


def run_study(
    settings: TuneSettings, task: Any, trial_options: TrialOptions, wait_for_others: bool = False
) -> Any:
    """Run the study's waiting trials until none is left (or ``timeout`` passes); with
    ``wait_for_others``, also until the trials other workers run have ended, so that this worker
    can go on to the confirmation with them. Returns the study."""
    import optuna

    study = open_study(settings)
    seed = settings.identity.get("seed", 42)

    def run_one(trial_id: int) -> None:
        _run_trial(optuna.Trial(study, trial_id), settings, task, trial_options, seed)

    work_through(study, settings.trials, "trial", run_one, settings.timeout, wait_for_others)
    _remove_leftovers(study, settings.output_dir / "trials")
    return study


def _remove_leftovers(study: Any, trials: Path) -> None:
    """Remove the ``.partial`` (and ``.old``) directories of the study's finished trials: those of a
    trial whose worker was killed are never resumed (its retry is a trial, and a folder, of its own),
    and a finished trial has no worker on it any more."""
    from .runner import remove_leftovers

    for trial in study.get_trials(deepcopy=False):
        if trial.state.is_finished():
            for leftover in remove_leftovers(trials / f"trial-{trial.number}"):
                logger.info("removed %s, left by trial %d", leftover, trial.number)


def _run_trial(trial: Any, settings: TuneSettings, task: Any, trial_options: TrialOptions, seed: int) -> None:
    """Train one trial's setting and tell the study how it ended: its dev metric, pruned or failed."""
    import optuna

    from ..training.pipeline import run_training

    study = trial.study
    trial.set_user_attr("worker", worker_identity())
    twin = _duplicate_of(trial)
    if twin is not None:
        trial.set_user_attr("reason", f"not run: trial {twin} has its place in the plan")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    baseline = trial.user_attrs.get("baseline", False)
    guide = {"guides": "none"} if baseline else settings.space.suggest(trial)
    trial.set_user_attr("guide", guide)
    try:
        options = trial_options(guide, seed, settings.output_dir / "trials" / f"trial-{trial.number}")
        run = task.start(options)
        metrics = run_training(options, run, callbacks=[report_evaluation(trial, run, settings.metric)])
        value = float(metrics[settings.metric])
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        _summary(trial.number, "pruned", trial.user_attrs.get("reason", ""))
    except KeyboardInterrupt:  # failed, and run again by the next command, from the start
        trial.set_user_attr("reason", "interrupted: run again")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        enqueue_retry(study, trial, {})
        raise
    except Exception as error:  # whatever the cause, the trial ends failed, never left running
        trial.set_user_attr("reason", _reason(error))
        trial.set_user_attr("input_error", isinstance(error, AttnguideError))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        _summary(trial.number, "failed", trial.user_attrs["reason"])
    else:
        study.tell(trial, value)
        _summary(trial.number, f"dev {settings.metric} {value:.4f}", describe_setting(guide))


def _reason(error: Exception) -> str:
    """A failed trial's reason: the error's first line; an unexpected error's type too."""
    text = str(error).splitlines()[0] if str(error).strip() else ""
    if isinstance(error, (AttnguideError, KeyError, ValueError, RuntimeError)):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _summary(number: int, outcome: str, detail: str) -> None:
    logger.warning("trial %d: %s; %s", number, outcome, detail) if "fail" in outcome else logger.info(
        "trial %d: %s; %s", number, outcome, detail
    )


def describe_setting(guide: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in guide.items())


def best_trial(study: Any) -> Any:
    """The completed guided trial with the highest dev metric (None if there is none)."""
    import optuna

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not t.user_attrs.get("baseline")
    ]
    return max(complete, key=lambda t: t.value, default=None)
