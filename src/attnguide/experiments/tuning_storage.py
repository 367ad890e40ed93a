"""Where a study of ``attnguide tune`` lives and how its workers share it.

The study lives in an Optuna storage: by default a journal file in the output directory, so that the
same command run again continues it, or any database Optuna supports (``--storage``), which several
workers share. Each worker takes the waiting trials one at a time (``work_through``); a trial whose
worker died is marked failed and run again: at once where the worker ran on this machine, and, in a
database shared by several machines, once its worker has sent no heartbeat for ``GRACE_SECONDS``
(``heartbeat``). A study's journal file whose last line a crash cut off is repaired when the study
is opened (``repair_journal``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AttnguideError

logger = logging.getLogger("attnguide")

HEARTBEAT_SECONDS = 60
"""How often a worker on a database storage tells the study that its running trial is alive."""
GRACE_SECONDS = 600
"""A running trial without a heartbeat for this long is taken for one whose worker died."""


def create_or_load(storage: Any, name: str, pruner: Any = None) -> tuple[Any, bool]:
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


def open_storage(url: str | None, output_dir: Path) -> Any:
    """The Optuna storage at ``url`` (a database shared by workers, with heartbeats), or, without
    one, the journal file ``study.journal`` in ``output_dir``, repaired where a crash tore it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        journal = output_dir / "study.journal"
        repair_journal(journal)
        return JournalStorage(JournalFileBackend(str(journal)))
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    attempts, logging_on = 3, not logger.disabled
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
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
        raise AttnguideError(f"--storage {url}: cannot open the study ({reason})") from None


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


def _process_state(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) of a Linux process from ``/proc``; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ": state is field 3, start time 22
    return fields[0], fields[19]


def _running(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and is the one that started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _process_state(pid)
    if state is None:  # no /proc: the process exists, that is all we know
        return True
    return state[0] not in "ZX" and (started is None or state[1] == started)


def worker_identity() -> dict[str, Any]:
    state = _process_state(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": state and state[1]}


def fail_abandoned_trials(study: Any) -> int:
    """Mark failed, and enqueue again, the running trials whose worker is gone: on this machine, a
    worker process that no longer runs (counted in the result); on a database storage, one silent
    for ``GRACE_SECONDS`` (Optuna fails those and calls ``_retry_silent_trial``, which says so)."""
    import optuna

    here = socket.gethostname()
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        if worker.get("host") == here and not _running(worker.get("pid", -1), worker.get("started")):
            optuna.Trial(study, trial._trial_id).set_user_attr("reason", "its worker stopped: run again")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            enqueue_retry(study, trial, {})
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
    enqueue_retry(study, trial, {"retry_reason": reason})


def enqueue_retry(study: Any, trial: Any, attrs: dict[str, Any]) -> None:
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


POLL_SECONDS = 5
"""How often a worker with nothing to take looks whether the other workers' trials have ended."""


def work_through(
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
