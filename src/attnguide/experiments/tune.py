"""``attnguide tune``: an Optuna study over the guiding settings, confirmed over fresh seeds.

The study searches which guides to add (every registered guide by default), their weights (log
scales), MDG's temperature, the guided layers and the weights' warm-up (``SearchSpace``; a YAML
file narrows or widens it). Trial 0 is
always the unguided baseline. Each trial is one training run on the same training settings and
seed; after each evaluation on dev it reports the task's metric, and a pruner (median or
successive halving) stops trials that cannot catch up. The study lives in an Optuna storage: by
default a journal file in the output directory, so that the same command run again continues it,
or any database Optuna supports (``--storage``), which several workers share. Trials are created
once, when the study is, so that workers together run exactly the number asked for and none twice;
a trial whose worker died is marked failed and run again: at once where the worker ran on this
machine, and, in a database shared by several machines, once its worker has sent no heartbeat for
``GRACE_SECONDS``. The same command with a larger ``--trials`` continues the study to that many.

A trial that fails, for whatever reason (a data file's bad line, a non-finite loss, a bug), is
marked failed with its reason (``trials.csv``, ``report.md``) and the study goes on with the next:
the data is read per trial, so bad data fails every trial alike. When no trial finished, the
command ends with the first failed trial's reason as its error line (exit code 2 where that was an
input error, 1 otherwise). A study's journal file whose last line a crash cut off is repaired when
the study is opened (``repair_journal``), and the ``.partial`` directories of trials that ended
(a killed trial's, which its retry does not continue) are removed when a worker's search ends.

After the search, the best setting on dev and the baseline are trained again with fresh seeds and
compared with ``compare``'s paired statistics and verdict rule; where a test file is given, each of
those runs is evaluated on it once (the setting was chosen before any test figure existed). The
confirmation runs are the trials of a second study in the same storage, so that the workers share
them as they share the search.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import AttnguideError, DataError
from ..files import write_json, write_text
from ..guiding.config import SCOPES, parse_guides, parse_layers
from ..guiding.registry import GUIDES, guide_settings, setting_owner
from ..rundir import is_complete_run
from .stats import METHODS, paired_difference, summarize

logger = logging.getLogger("attnguide")

HEARTBEAT_SECONDS = 60
"""How often a worker on a database storage tells the study that its running trial is alive."""
GRACE_SECONDS = 600
"""A running trial without a heartbeat for this long is taken for one whose worker died."""

GENERAL = ("guides", "layers", "scope", "guide_warmup_steps")
FIXED_RANGES: dict[str, Any] = {
    "mdg_weight": {"low": 1e-4, "high": 1e-1, "log": True},
    "pdg_weight": {"low": 1e-5, "high": 3e-3, "log": True},
    "temperature": {"low": 0.5, "high": 8.0, "log": True},
}
"""The ranges of the default space set by hand. PDG's stops at three times its default weight, where
the SICK grids of docs/RESULTS.md already lose points; another registered guide's weight, where the
guides name it, ranges from a hundredth to ten times its default."""


def default_space(capture: str = "auto") -> dict[str, Any]:
    """The default search space: each registered guide alone and MDG with PDG (those that need full
    attention maps left out where ``capture`` is ``efficient``, which keeps none), ``FIXED_RANGES``,
    every layer choice a model may have, and the warm-up."""
    guides = [name for name in [*GUIDES, "mdg+pdg"] if capture != "efficient" or not _needs_maps(name)]
    return {
        "guides": guides,
        **FIXED_RANGES,
        "layers": ["all", "last:2", "last:4"],
        "guide_warmup_steps": [0, 100],
    }


def _needs_maps(guides: str) -> bool:
    """Whether a choice of guides (``mdg+pattern``) names one that needs full attention maps."""
    return any(GUIDES[name].needs_maps for name in parse_guides(guides))


@dataclass(frozen=True)
class Range:
    """A float parameter drawn from [low, high], on a log scale where ``log``."""

    low: float
    high: float
    log: bool = True


@dataclass
class SearchSpace:
    """Categorical parameters (a list of choices), float ranges, and fixed values, by name."""

    params: dict[str, Any] = field(default_factory=default_space)
    source: str = "the default space"
    given: frozenset[str] = frozenset()  # the parameters the space file set

    @classmethod
    def from_file(cls, path: str | Path | None, capture: str = "auto") -> SearchSpace:
        """The default space (``default_space(capture)``) with the keys of a YAML file replacing the
        defaults of the same name; with ``capture`` efficient, a guide choice that needs full attention
        maps is refused."""
        space: dict[str, Any] = default_space(capture)
        if path is not None:
            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except OSError as error:
                raise DataError(path, f"cannot read the search space ({error.strerror or error})") from None
            except yaml.YAMLError as error:
                raise DataError(path, f"not valid YAML: {str(error).splitlines()[0]}") from None
            if not isinstance(loaded, dict):
                raise DataError(path, "expected a mapping of parameters such as guides, mdg_weight, layers")
            space.update(loaded)
        source = str(path) if path else "the default space"
        checked = _checked(space, source)
        maps = next((choice for choice in checked["guides"] if _needs_maps(str(choice))), None)
        if capture == "efficient" and maps is not None:
            raise AttnguideError(
                f"{source}: guides: {maps!r} needs full attention maps, which --capture efficient does not "
                "keep: use --capture auto or output-attentions, or search other guides"
            )
        return cls(checked, source, frozenset(loaded) if path else frozenset())

    def fitted_to(self, num_layers: int) -> SearchSpace:
        """The space for a model with ``num_layers`` layers: layer choices it does not have are
        dropped from the default space (``last:4`` of a 2-layer model) and refused from a file."""
        kept = [c for c in self.params.get("layers", ["all"]) if _fits(c, num_layers)]
        if len(kept) < len(self.params.get("layers", ["all"])) and "layers" in self.given:
            wrong = next(c for c in self.params["layers"] if c not in kept)
            raise AttnguideError(f"{self.source}: layers: the model has {num_layers} layers (got {wrong!r})")
        return SearchSpace({**self.params, "layers": kept or ["all"]}, self.source, self.given)

    def to_dict(self) -> dict[str, Any]:
        return {k: v.__dict__ if isinstance(v, Range) else v for k, v in self.params.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """A trial's guide settings: the guides, then only the settings those guides use."""
        guides = self._choose(trial, "guides")
        names = parse_guides(guides)
        settings: dict[str, Any] = {"guides": guides}
        for setting in guide_settings():
            owner = setting_owner(setting.name)
            if setting.minimum is not None and owner.name in names:
                settings[setting.name] = self._choose(trial, setting.name, _default_range(setting.name))
        settings["layers"] = self._choose(trial, "layers", "all")
        settings["scope"] = self._choose(trial, "scope", "joint")
        settings["warmup_steps"] = int(self._choose(trial, "guide_warmup_steps", 0))
        return settings

    def _choose(self, trial: Any, name: str, default: Any = None) -> Any:
        value = self.params.get(name, default)
        if isinstance(value, Range):
            return trial.suggest_float(name, value.low, value.high, log=value.log)
        if isinstance(value, list):
            return trial.suggest_categorical(name, value) if len(value) > 1 else value[0]
        return value


def _fits(choice: Any, num_layers: int) -> bool:
    """Whether a layer selection names layers a model of ``num_layers`` has (``last:L`` is ``all``)."""
    spec = parse_layers(str(choice))
    if spec == "all":
        return True
    if isinstance(spec, str):
        return int(spec.split(":")[1]) < num_layers
    return all(-num_layers <= i < num_layers for i in spec)


def _default_range(name: str) -> Range:
    default = next(s.default for s in guide_settings() if s.name == name)
    return Range(default / 100, default * 10)


def _checked(space: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The space with its ranges as ``Range``; an unknown parameter or an empty range is an error."""
    numeric = {s.name: s for s in guide_settings() if s.minimum is not None}
    known = (*GENERAL, *numeric)
    checked: dict[str, Any] = {}
    for name, value in space.items():
        if name not in known:
            raise AttnguideError(f"{source}: unknown parameter {name!r}; expected one of {', '.join(known)}")
        if isinstance(value, dict):
            if (
                name not in numeric
                or set(value) - {"low", "high", "log"}
                or not {"low", "high"} <= set(value)
            ):
                raise AttnguideError(f"{source}: {name}: expected a list of choices or {{low, high[, log]}}")
            low, high = (_number(source, f"{name}: {end}", value[end]) for end in ("low", "high"))
            log = value.get("log", True)
            if not isinstance(log, bool):
                raise AttnguideError(f"{source}: {name}: log: expected true or false, got {log!r}")
            if not low < high:
                raise AttnguideError(
                    f"{source}: {name}: empty range: low {value['low']!r} must be below "
                    f"high {value['high']!r}"
                )
            if log and low <= 0:
                raise AttnguideError(f"{source}: {name}: a log range needs low > 0, got {value['low']!r}")
            try:
                numeric[name].convert(low)
            except AttnguideError as error:
                raise AttnguideError(f"{source}: {name}: low: {error}") from None
            checked[name] = Range(low, high, log)
            continue
        choices = value if isinstance(value, list) else [value]
        if not choices:
            raise AttnguideError(f"{source}: {name}: empty list of choices")
        if name in numeric:  # YAML 1.1 reads 1e-4 as text: numbers in text are numbers
            choices = [_number(source, name, choice) for choice in choices]
        elif name == "guide_warmup_steps":
            choices = [_number(source, name, choice, integer=True) for choice in choices]
        for choice in choices:
            _check_choice(source, name, choice, numeric)
        checked[name] = choices
    return checked


def _number(source: str, where: str, value: Any, integer: bool = False) -> float | int:
    """A number of the space file (``grid.number_value``: text such as ``1e-4`` too); else an error
    naming the file and key."""
    from .grid import number_value

    try:
        return number_value(value, integer)
    except (TypeError, ValueError):
        expected = "a whole number" if integer else "a finite number"
        raise AttnguideError(f"{source}: {where}: expected {expected}, got {value!r}") from None


def _check_choice(source: str, name: str, choice: Any, numeric: dict) -> None:
    try:
        if name == "guides":
            if not parse_guides(str(choice)):
                raise AttnguideError("'none' is the baseline, trial 0, and not a choice of the search")
        elif name == "layers":
            parse_layers(str(choice))
        elif name == "scope":
            if choice not in SCOPES:
                raise AttnguideError(f"expected one of {', '.join(SCOPES)}")
        elif name == "guide_warmup_steps":
            if not isinstance(choice, int) or choice < 0:
                raise AttnguideError("expected whole numbers >= 0")
        else:
            numeric[name].convert(choice)
    except AttnguideError as error:
        raise AttnguideError(f"{source}: {name}: {error} (got {choice!r})") from None


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
    report it to the trial and stop the run if the pruner says so (``optuna.TrialPruned``)."""
    import optuna
    from transformers import TrainerCallback

    from ..models import underlying_transformer

    class ReportEvaluation(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
            encoder = underlying_transformer(model)
            kernel = encoder.config._attn_implementation
            with tempfile.TemporaryDirectory() as scratch:
                value = task_run.evaluate(model, processing_class, state.log_history, Path(scratch))[metric]
            encoder.set_attn_implementation(kernel)  # the evaluation took the eager kernel; training goes on
            model.train()
            epoch = round(state.epoch or 0)
            trial.report(value, epoch)
            trial.set_user_attr(f"dev_{metric}_epoch{epoch}", value)
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
    study, created = _create_or_load(_storage(settings), settings.study_name, pruner)
    if not created:
        _check_identity(study, settings)
        _extend(study, settings.trials)
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


def _duplicate_of(trial: Any) -> int | None:
    """The number of an earlier trial enqueued for the same ``slot`` as this one, if any."""
    slot = trial.user_attrs.get("slot")
    if slot is None:
        return None
    earlier = (
        t.number
        for t in trial.study.get_trials(deepcopy=False)
        if t.number < trial.number and "retry_of" not in t.user_attrs and t.user_attrs.get("slot") == slot
    )
    return next(earlier, None)


def _create_or_load(storage: Any, name: str, pruner: Any = None) -> tuple[Any, bool]:
    """The study ``name`` in ``storage`` and whether this worker created it: if not, it existed or
    another worker has just created it, and it is returned once its creator has marked it ready."""
    import optuna

    try:
        if name in optuna.study.get_all_study_names(storage):
            raise optuna.exceptions.DuplicatedStudyError(name)
        sampler = optuna.samplers.TPESampler(seed=0)
        study = optuna.create_study(
            storage=storage, study_name=name, pruner=pruner, sampler=sampler, direction="maximize"
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        # another worker's sampler: its own seed, so that workers do not draw the same settings
        sampler = optuna.samplers.TPESampler(seed=os.getpid())
        study = optuna.load_study(storage=storage, study_name=name, pruner=pruner, sampler=sampler)
        _wait_until_ready(study)
        return study, False


def _storage(settings: TuneSettings) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if settings.storage is None:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        journal = settings.output_dir / "study.journal"
        repair_journal(journal)
        return JournalStorage(JournalFileBackend(str(journal)))
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    attempts, logging_on = 3, not logger.disabled
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    settings.storage,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=_retry_silent_trial,
                )
            # a new database's schema is set up by Alembic, whose logging set-up (where the root
            # logger has no handler: a program that never configured logging) disables every
            # logger that exists; attnguide's must go on reporting the trials as before
            logger.disabled = not logging_on
            return storage
        except (IntegrityError, ProgrammingError) as error:
            # workers starting together on a new database race to create its tables: the loser's
            # CREATE TABLE fails on the winner's, and the tables are there a moment later
            failure = error
            if attempt < attempts:
                time.sleep(attempt)
                continue
        except Exception as error:  # the database's own errors: any of them means no study
            failure = error
        reason = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        raise AttnguideError(f"--storage {settings.storage}: cannot open the study ({reason})") from None


def repair_journal(path: Path) -> None:
    """Make a study's journal file safe to append to. A last line without its newline is a record a
    crash cut off (power lost, disk full): Optuna reads past it, but its next record would be written
    onto it, and the file could not be read again. That tail is cut off, under the journal's own
    lock, with a warning saying what was dropped; a damaged line before the last is refused."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if path.is_dir():
        raise AttnguideError(f"{path}: is a directory; expected the study's journal file")
    if not path.is_file():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()  # other workers append only while holding it
    try:
        data = path.read_bytes()
        kept = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:kept].splitlines(), start=1):
            try:
                json.loads(line)
            except ValueError:
                raise AttnguideError(
                    f"{path}:{number}: not a record of an Optuna journal; the study cannot be read "
                    f"past it: keep the lines before it (head -n {number - 1}) or move the file away "
                    "to start again"
                ) from None
        if kept < len(data):
            torn = data[kept:]
            os.truncate(path, kept)
            shown = torn[:60].decode("utf-8", errors="replace") + ("..." if len(torn) > 60 else "")
            logger.warning(
                "%s: its last line was cut off by a crash while it was written; dropped its %d bytes (%s)",
                path,
                len(torn),
                shown,
            )
    finally:
        lock.release()


def _wait_until_ready(study: Any) -> None:
    deadline = time.monotonic() + 120
    while not study.user_attrs.get("ready"):  # another worker is creating the study's trials
        if time.monotonic() > deadline:
            raise AttnguideError(f"study {study.study_name!r}: was never made ready; start a new one")
        time.sleep(0.5)


def _check_identity(study: Any, settings: TuneSettings) -> None:
    saved = study.user_attrs.get("identity", {})
    for key in sorted(set(saved) | set(settings.identity)):
        if saved.get(key) != settings.identity.get(key):
            raise AttnguideError(
                f"study {settings.study_name!r}: its {key} differs from this command's "
                f"({saved.get(key)!r} there, {settings.identity.get(key)!r} here); use another --output-dir "
                "or --study-name"
            )


def _worker() -> dict[str, Any]:
    from .runner import _process_state

    state = _process_state(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": state and state[1]}


def fail_abandoned_trials(study: Any) -> int:
    """Mark failed, and enqueue again, the running trials whose worker is gone: on this machine, a
    worker process that no longer runs (counted in the result); on a database storage, one silent
    for ``GRACE_SECONDS`` (Optuna fails those and calls ``_retry_silent_trial``, which says so)."""
    import optuna

    from .runner import _running

    here = socket.gethostname()
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        if worker.get("host") == here and not _running(worker.get("pid", -1), worker.get("started")):
            optuna.Trial(study, trial._trial_id).set_user_attr("reason", "its worker stopped: run again")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            _enqueue_retry(study, trial, {})
            failed += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


def _retry_silent_trial(study: Any, trial: Any) -> None:
    """Optuna's callback for a trial it failed for want of heartbeats: run it again. The failed trial
    can take no attribute any more, so the reason goes on the retry (``write_results`` shows it on
    both)."""
    host = trial.user_attrs.get("worker", {}).get("host", "another machine")
    reason = f"its worker on {host} sent no heartbeat for {GRACE_SECONDS} s: run again"
    logger.warning("trial %d: %s", trial.number, reason)
    _enqueue_retry(study, trial, {"retry_reason": reason})


def _enqueue_retry(study: Any, trial: Any, attrs: dict[str, Any]) -> None:
    kept = {k: v for k, v in trial.user_attrs.items() if k in _WHAT_A_TRIAL_IS}
    study.enqueue_trial(trial.params, user_attrs={**kept, **attrs, "retry_of": trial.number})


_WHAT_A_TRIAL_IS = ("baseline", "setting", "seed")
"""The user attributes that a trial's retry keeps: a search trial's role, a confirmation run's."""


@contextmanager
def heartbeat(study: Any, trial_id: int) -> Iterator[None]:
    """While the block runs, record the trial's heartbeat in a storage that takes them (a database
    with ``heartbeat_interval``), so that other workers can tell it from one whose worker died."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as error:  # a database hiccup: the next beat may get through
                logger.warning("trial heartbeat not recorded (%s)", str(error).splitlines()[0])
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="attnguide-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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

    _work(study, settings.trials, "trial", run_one, settings.timeout, wait_for_others)
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


POLL_SECONDS = 5
"""How often a worker with nothing to take looks whether the other workers' trials have ended."""


def _work(
    study: Any,
    total: int,
    unit: str,
    run_one: Callable[[int], None],
    timeout: float | None = None,
    wait_for_others: bool = False,
) -> None:
    """This worker's share of a study: take its waiting trials one at a time (atomically, in every
    storage: no trial runs twice) and run them, retrying those whose worker died, until none waits
    (with ``wait_for_others``: and none runs elsewhere) or ``timeout`` seconds have passed. A
    progress bar counts the study's finished trials."""
    import optuna
    from tqdm import tqdm

    def finished() -> int:
        trials = study.get_trials(deepcopy=False)
        return sum(t.state.is_finished() and t.state.name != "FAIL" for t in trials)

    started = time.monotonic()
    bar = tqdm(total=total, initial=finished(), unit=unit, disable=not logger.isEnabledFor(logging.INFO))
    while timeout is None or time.monotonic() - started < timeout:
        if fail_abandoned_trials(study):
            logger.warning("%ss whose worker stopped were marked failed and will run again", unit)
        trial_id = study._pop_waiting_trial_id()
        if trial_id is not None:
            with heartbeat(study, trial_id):  # from the moment the trial is this worker's
                run_one(trial_id)
        elif wait_for_others and study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            time.sleep(POLL_SECONDS)  # a retry of one whose worker dies is taken here
        else:
            break
        done = finished()
        if done > bar.n:  # not while waiting: a bar redrawn every poll fills a log
            bar.update(done - bar.n)
    bar.close()


def _run_trial(trial: Any, settings: TuneSettings, task: Any, trial_options: TrialOptions, seed: int) -> None:
    """Train one trial's setting and tell the study how it ended: its dev metric, pruned or failed."""
    import optuna

    from ..training.pipeline import run_training

    study = trial.study
    trial.set_user_attr("worker", _worker())
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
        _enqueue_retry(study, trial, {})
        raise
    except Exception as error:  # whatever the cause, the trial ends failed, never left running
        trial.set_user_attr("reason", _reason(error))
        trial.set_user_attr("input_error", isinstance(error, AttnguideError))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        _summary(trial.number, "failed", trial.user_attrs["reason"])
    else:
        study.tell(trial, value)
        _summary(trial.number, f"dev {settings.metric} {value:.4f}", _describe(guide))


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


def _describe(guide: Mapping[str, Any]) -> str:
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

    _work(study, len(CONFIRMED) * len(settings.seeds), "run", run_one, wait_for_others=True)
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
    study, created = _create_or_load(search._storage, name)
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
    trial.set_user_attr("worker", _worker())
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
        _enqueue_retry(trial.study, trial, {})
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


def write_results(
    settings: TuneSettings, study: Any, confirmation: dict[str, Any] | None, unconfirmed: str = ""
) -> str:
    """``trials.csv``, ``results.json``, the figures and ``report.md`` in the output directory; returns
    the verdict line (without a confirmation, ``unconfirmed`` says why)."""
    out = settings.output_dir
    trials = study.get_trials(deepcopy=False)
    retried = {
        t.user_attrs["retry_of"]: t.user_attrs.get("retry_reason")
        for t in trials
        if "retry_of" in t.user_attrs
    }
    rows = [_trial_row(t, settings.metric, retried.get(t.number)) for t in trials]
    buffer = io.StringIO()
    keys = {key for row in rows for key in row}
    names = [*(k for k in _FIRST if k in keys), *sorted(keys - set(_FIRST))]
    writer = csv.DictWriter(buffer, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "trials.csv", buffer.getvalue())
    best = best_trial(study)
    baseline = next((t for t in trials if t.user_attrs.get("baseline") and t.state.name == "COMPLETE"), None)
    verdict = _verdict(confirmation, settings.metric) if confirmation else f"no confirmation: {unconfirmed}"
    figures = _figures(study, out / "figures", settings.metric)
    write_json(
        out / "results.json",
        {
            "study": settings.study_name,
            "metric": settings.metric,
            "identity": settings.identity,
            "space": settings.space.to_dict(),
            "trials": rows,
            "baseline_trial": _trial_row(baseline, settings.metric) if baseline else None,
            "best_trial": _trial_row(best, settings.metric) if best else None,
            "confirmation": confirmation,
            "verdict": verdict,
            "method": METHODS,
        },
    )
    write_text(out / "report.md", _report(settings, rows, best, baseline, confirmation, verdict, figures))
    return verdict


_FIRST = ("trial", "state", "value", "baseline", "guides", "reason")


def _trial_row(trial: Any, metric: str, reason: str | None = None) -> dict[str, Any]:
    """A trial as a row of trials.csv; ``reason`` where it failed for a reason its retry carries."""
    guide = trial.user_attrs.get("guide", {})
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "baseline": bool(trial.user_attrs.get("baseline")),
        **guide,
        "reason": trial.user_attrs.get("reason") or reason or "",
        "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        **{k: v for k, v in trial.user_attrs.items() if k.startswith(f"dev_{metric}_epoch")},
    }


def _verdict(confirmation: dict[str, Any], metric: str) -> str:
    paired = confirmation["paired"]
    seeds = paired["n"]
    diff = paired["mean_diff"]
    shown = f"{diff:+.4f}" if isinstance(diff, float) else "–"
    return (
        f"{paired['verdict']}: the best setting against the unguided baseline over {seeds} fresh seeds, "
        f"mean difference in dev {metric} {shown} (95% bootstrap interval "
        f"[{_n(paired['ci_low'])}, {_n(paired['ci_high'])}], paired t-test p {_n(paired['t_p'], '.3g')})"
    )


def _n(value: Any, spec: str = "+.4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def _figures(study: Any, folder: Path, metric: str) -> list[str]:
    """Optimisation history, parameter importances and the metric against each weight, as PNGs
    drawn by Optuna's matplotlib visualisations; a figure Optuna cannot draw yet is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as views
    from matplotlib.ticker import NullFormatter

    from ..files import atomic_path

    drawn = []
    weights = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params if p.endswith("_weight")})
    plots = {
        "history.png": lambda: views.plot_optimization_history(study, target_name=f"dev {metric}"),
        "importances.png": lambda: views.plot_param_importances(study),
        **(
            {"weights.png": lambda: views.plot_slice(study, params=weights, target_name=f"dev {metric}")}
            if weights
            else {}
        ),
    }
    verbosity = optuna.logging.get_verbosity()
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # Optuna's notes on its experimental plots and few trials
                warnings.simplefilter("ignore")
                optuna.logging.set_verbosity(optuna.logging.ERROR)  # and its "no complete trials"
                axes = plot()
        except (ValueError, RuntimeError) as error:  # too few finished trials for this figure
            logger.info("figure %s left out: %s", name, str(error).splitlines()[0])
            continue
        finally:
            optuna.logging.set_verbosity(verbosity)
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        for axis in figure.axes:  # a narrow log range labels every minor tick, one over the other
            axis.xaxis.set_minor_formatter(NullFormatter())
        figure.set_size_inches(max(6.0, 3.2 * len(weights)) if name == "weights.png" else 7.0, 4.5)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / name) as tmp:
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(figure)
        drawn.append(name)
    return drawn


def _report(
    settings: TuneSettings,
    rows: list[dict[str, Any]],
    best: Any,
    baseline: Any,
    confirmation: dict[str, Any] | None,
    verdict: str,
    figures: list[str],
) -> str:
    metric = settings.metric
    counts = {
        state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "fail", "running")
    }
    lines = [
        f"# attnguide tune: {settings.study_name}",
        "",
        f"{len(rows)} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed, {counts['running']} running; dev {metric}, higher is better; trial 0 is "
        "the unguided baseline.",
        "",
        f"**Verdict:** {verdict}.",
        "",
        "## The search",
        "",
        f"Baseline (trial 0): {_n(baseline.value, '.4f') if baseline else 'not finished'}.",
        _best_line(best),
        "",
        "| trial | state | dev " + metric + " | settings | note |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for row in rows:
        setting = {
            k: v for k, v in row.items() if k not in _FIRST and k != "seconds" and not k.startswith("dev_")
        }
        described = "baseline" if row["baseline"] else _describe({"guides": row.get("guides"), **setting})
        lines.append(
            f"| {row['trial']} | {row['state']} | {_n(row['value'], '.4f')} | {described} | {row['reason']} |"
        )
    if confirmation is not None:
        lines += [
            "",
            f"## Confirmation over {len(settings.seeds)} fresh seeds ({', '.join(map(str, settings.seeds))})",
            "",
        ]
        lines += _confirmation_table(confirmation, "dev")
        if "test" in confirmation:
            lines += ["", "Test, evaluated once after the choice on dev:", ""]
            lines += _confirmation_table(confirmation, "test")
    lines += [
        "",
        "## Figures",
        "",
        *(f"![{name}](figures/{name})\n" for name in figures),
        "## Method",
        "",
        METHODS,
        "",
    ]
    return "\n".join(lines)


def _best_line(best: Any) -> str:
    if best is None:
        return "Best guided trial: none finished."
    setting = _describe(best.user_attrs["guide"])
    return f"Best guided trial: trial {best.number}, {_n(best.value, '.4f')}, with {setting}."


def _confirmation_table(confirmation: dict[str, Any], split: str) -> list[str]:
    paired = confirmation["paired" if split == "dev" else "test_paired"]
    rows = [
        "| setting | values by seed | mean ± std | Δ vs baseline | Δ 95% CI | t-test p | verdict |",
        "|" + " --- |" * 7,
    ]
    for name, summary in confirmation[split].items():
        values = ", ".join(f"{v:.4f}" for v in summary["values"].values())
        spread = f"{_n(summary['mean'], '.4f')} ± {_n(summary['std'], '.4f')}"
        if name == "baseline":
            rows.append(f"| {name} | {values} | {spread} | | | | |")
        else:
            interval = f"[{_n(paired['ci_low'])}, {_n(paired['ci_high'])}]"
            diff, p_value = _n(paired["mean_diff"]), _n(paired["t_p"], ".3g")
            rows.append(
                f"| {name} | {values} | {spread} | {diff} | {interval} | {p_value} | {paired['verdict']} |"
            )
    return rows
