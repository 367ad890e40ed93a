"""``attnguide compare``: run a grid of ``attnguide train`` cells, resumably, and report the statistics.

Each cell runs as its own ``python -m attnguide train`` process, so a cell that fails is recorded
with the last line of its log and the grid goes on, and a killed grid leaves at most the hidden
``.seedN.partial`` directory of the cell it was running, which the next attempt at that cell
continues from its last checkpoint (``train --resume``) or replaces. A cell whose run directory
holds ``run.json`` and ``metrics.json`` is finished and never run again; if that run was made with
other settings than the cell asks for (another data file content, say) the grid stops before
running anything rather than mix the two. A lock on the output directory (``GridLock``), inherited
by the training processes, keeps a second ``compare`` out while any of them still runs; a
``compare`` started again after one was killed waits for the processes the killed one left behind
(a run still training, or one still exiting) instead of racing them for the same cell.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AttnguideError
from ..files import write_json
from ..guiding.config import GuideConfig
from ..rundir import file_sha256, partial_path
from ..source_revision import source_revision
from ..tasks import DEFAULT_TASK
from .grid import Cell, Grid

if TYPE_CHECKING:  # the results module imports scipy: loaded only when a grid runs
    from .results import CellResult

logger = logging.getLogger("attnguide")


def run_dir(grid: Grid, cell: Cell) -> Path:
    """Where a cell's ``attnguide train`` run directory is."""
    return grid.output_dir / "runs" / cell.path


def data_hashes(grid: Grid) -> dict[str, str]:
    """SHA-256 of every train, dev and test file, to check finished runs and test evaluations against."""
    files = (path for data in grid.datasets for path in (data.train, data.dev, data.test) if path)
    return {path: file_sha256(path) for path in files}


def _mismatch(run: dict, cell: Cell, hashes: dict[str, str]) -> str | None:
    """The first setting in which a finished run differs from its cell, or ``None``."""
    options = run.get("options", {})
    expected: dict[str, Any] = {"task": cell.data.task or DEFAULT_TASK, "model": cell.model}
    expected.update({cell.data.format_option: cell.data.format, **cell.training, "seed": cell.seed})
    expected.update(cell.data.columns.given())
    actual = {key: options.get(key) for key in expected}
    actual["task"] = run.get("task", DEFAULT_TASK)  # older runs (classification, the default) do not say so
    guide = GuideConfig(**cell.guide).to_dict()
    expected.update({f"guide {k}": guide[k] for k in cell.guide})
    actual.update({f"guide {k}": options.get("guide", {}).get(k) for k in cell.guide})
    for key, value in expected.items():
        if actual[key] != value:
            return f"{key}: the run has {actual[key]!r}, the grid asks for {value!r}"
    for split in ("train", "dev"):
        recorded = run.get("data", {}).get(split, {}).get("sha256")
        recorded = set(recorded.values()) if isinstance(recorded, dict) else {recorded}  # ranking: per file
        if hashes[getattr(cell.data, split)] not in recorded:
            return f"the {split} file's content differs from the one the run was trained on"
    return None


def finished_result(grid: Grid, cell: Cell, hashes: dict[str, str]) -> CellResult | None:
    """The result of a cell whose run directory is complete; raises if it was run with other settings."""
    from .results import FINISHED, CellResult

    folder = run_dir(grid, cell)
    if not (folder / "run.json").is_file() or not (folder / "metrics.json").is_file():
        return None
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    mismatch = _mismatch(run, cell, hashes)
    if mismatch is not None:
        raise AttnguideError(
            f"{folder}: a finished run with other settings than the grid's ({mismatch}); "
            "move it away or use another output_dir"
        )
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    revision = run.get("versions", {}).get("attnguide revision")
    return CellResult(
        cell, FINISHED, metrics, seconds=run.get("seconds"), location=str(folder), revision=revision
    )


def other_revisions(results: list[CellResult]) -> str | None:
    """A line naming the finished cells made by other attnguide source than the one running now, or
    ``None``: the version number does not change between releases, so only the recorded revision
    tells whether a cell's numbers came from the code that would redo it."""
    current = source_revision()
    if current is None:  # not a git checkout: nothing to compare with
        return None
    made = Counter(r.revision or "unrecorded" for r in results if r.status == "finished")
    others = {revision: count for revision, count in sorted(made.items()) if revision != current}
    if not others:
        return None
    listed = ", ".join(
        f"{count} made before runs recorded it" if revision == "unrecorded" else f"{count} by {revision}"
        for revision, count in others.items()
    )
    return (
        f"{sum(others.values())} finished cells may come from other attnguide source than this one "
        f"({current}): {listed}; they count as they are (remove a run directory to redo it)"
    )


def check_writable_dir(path: Path, what: str = "--output-dir") -> None:
    """Refuse, creating nothing, an output directory that cannot be made or written in: a file of that
    name, a file where one of its parent directories should be, or a place this user cannot write."""
    if path.exists() and not path.is_dir():
        raise AttnguideError(f"{what} {path}: exists and is not a directory")
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AttnguideError(f"{what} {path}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise AttnguideError(
            f"{what} {path}: cannot write in {existing} ({error.strerror or error})"
        ) from None


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove what an interrupted run of a finished run directory ``folder`` left beside it: its
    hidden ``.NAME.partial`` directory (a killed attempt's checkpoints) and ``.NAME.old`` (a run
    being replaced). Only for a run that is known finished, failed or run elsewhere, and that no live
    process works on. Returns what was removed."""
    removed = []
    for leftover in (partial_path(folder), folder.parent / f".{folder.name}.old"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed


ATTNGUIDE = (sys.executable, "-m", "attnguide")
"""The command that runs a cell: ``attnguide`` under this Python."""

LOCK_FILE = ".compare.lock"


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


class GridLock:
    """An exclusive lock on a grid's output directory, held by ``compare`` and inherited by every
    process it starts, so that it stays held until the last of them ends.

    The lock file says who holds it (``compare``'s pid and, while one runs, the pid of the training
    or evaluation process and its cell), so that a second ``compare`` can tell a live one from the
    processes a killed one left behind.
    """

    def __init__(self, output_dir: Path) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.path = output_dir / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(output_dir)
        except BaseException:
            os.close(self.fd)
            raise
        self.record()

    def _acquire(self, output_dir: Path) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = self._holder()
        here = socket.gethostname()
        if holder is None or holder.get("host") != here or _running(holder["pid"], holder.get("started")):
            who = "" if holder is None else f" (pid {holder['pid']} on {holder.get('host')}{_doing(holder)})"
            raise AttnguideError(
                f"{output_dir}: another attnguide compare{who}, or a run it started, is still working here"
            )
        # The compare that took the lock is gone; a process it started still holds the lock: a run
        # left running when only compare was killed, or one still exiting after a kill. Its cell is
        # finished or resumable once it ends, so wait rather than race it.
        logger.warning(
            "%s: waiting for the process that an earlier attnguide compare (pid %d) started%s to end; "
            "stop it to go on at once",
            output_dir,
            holder["pid"],
            _doing(holder),
        )
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(os.pread(self.fd, 1 << 16, 0).decode("utf-8"))
        except ValueError:
            return None
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None

    def record(self, worker: int | None = None, doing: str | None = None) -> None:
        """Say in the lock file who holds the lock, and which process works on what now."""
        state = _process_state(os.getpid())
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": state and state[1]}
        if worker is not None:
            holder.update(worker=worker, doing=doing)
        text = json.dumps(holder).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def __enter__(self) -> GridLock:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _doing(holder: dict[str, Any]) -> str:
    worker = holder.get("worker")
    return f", process {worker}: {holder.get('doing')}" if worker is not None else ""


def _run_attnguide(args: list[str], log: Path, lock: GridLock, what: str) -> str | None:
    """Run ``attnguide -q ARGS`` with its output in ``log``, recorded in the lock file as ``what``;
    the error line if it failed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [*ATTNGUIDE, "-q", *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            pass_fds=(lock.fd,),
        )
        lock.record(process.pid, what)
        try:
            code = process.wait()
        except BaseException:  # interrupted: the run stops too, and resumes from its last checkpoint
            process.kill()
            process.wait()
            raise
        finally:
            lock.record()
    if code == 0:
        return None
    if code < 0:
        return f"killed by signal {-code}"
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), f"exit code {code}")


def _train_cell(grid: Grid, cell: Cell, hashes: dict[str, str], lock: GridLock) -> CellResult:
    from .results import FAILED, CellResult

    folder = run_dir(grid, cell)
    log = grid.output_dir / "logs" / f"{cell.path}.log"
    # an interrupted cell continues from its last checkpoint (a finished run resumes to itself)
    args = [*cell.train_args(folder), *(["--overwrite"] if folder.exists() else []), "--resume"]
    error = _run_attnguide(args, log, lock, f"training {cell.path}")
    result = finished_result(grid, cell, hashes) if error is None else None
    return result or CellResult(
        cell, FAILED, error=error or "the run left no metrics.json", location=str(log)
    )


def _test_cell(grid: Grid, trained: CellResult, hashes: dict[str, str], lock: GridLock) -> CellResult:
    """Evaluate a finished cell on its data set's test file. The metrics are kept with the test file's
    and the trained run's hashes (``source.json``), and reused while both are unchanged."""
    from .results import FAILED, FINISHED, CellResult

    cell, data = trained.cell, trained.cell.data
    folder = grid.output_dir / "test" / cell.path
    metrics_file, source_file = folder / "predictions.metrics.json", folder / "source.json"
    source = {
        "test": data.test,
        "test_sha256": hashes[data.test],
        "run_sha256": file_sha256(Path(trained.location) / "run.json"),
    }
    kept = source_file.is_file() and json.loads(source_file.read_text(encoding="utf-8")) == source
    if not (kept and metrics_file.is_file()):
        args = ["eval", "--model", trained.location, "--data", data.test, *data.data_args()]
        args += [
            "--max-length",
            str(cell.training["max_length"]),
            "--output",
            str(folder / "predictions.jsonl"),
        ]
        error = _run_attnguide(args, folder / "eval.log", lock, f"evaluating {cell.path} on test")
        if error is not None:
            return CellResult(cell, FAILED, error=error, location=str(folder / "eval.log"))
        write_json(source_file, source)
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    return CellResult(cell, FINISHED, metrics, location=str(folder))


def _test_results(
    grid: Grid, results: list[CellResult], hashes: dict[str, str], lock: GridLock
) -> list[CellResult]:
    """The chosen setting of each data set with a test file, and its baseline, evaluated on test."""
    from .results import FINISHED, analyse, best_on_dev

    best = best_on_dev(analyse(results), len(grid.seeds))
    chosen = {
        sid
        for data in grid.datasets
        if data.test is not None and data.name in best
        for sid in (best[data.name].cell.setting_id, best[data.name].cell.baseline_id)
    }
    return [
        _test_cell(grid, r, hashes, lock)
        for r in results
        if (r.cell.setting_id in chosen or (grid.test_all and r.cell.data.test is not None))
        and r.status == FINISHED
    ]


def run_grid(grid: Grid, dry_run: bool = False) -> list[CellResult]:
    """Run every cell not yet finished, then evaluate the dev choice on test; writes the report after
    each cell. Returns the training cells' results, then the test evaluations'."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .comparison_report import write_report
    from .results import PENDING, CellResult

    hashes = data_hashes(grid)
    results = [finished_result(grid, cell, hashes) or CellResult(cell, PENDING) for cell in grid.cells]
    todo = [i for i, r in enumerate(results) if r.status == PENDING]
    summary = (
        f"{len(results)} cells in {grid.output_dir}: {len(results) - len(todo)} finished, {len(todo)} to run"
    )
    revisions = other_revisions(results)
    if dry_run:
        print(summary)
        if revisions:
            print(revisions)
        for result in results:
            print(f"{'finished' if result.status != PENDING else 'to run  '}  {result.cell.path}")
        return results
    if len(grid.seeds) < 3:
        logger.warning(
            "only %d seed(s): intervals will be wide and paired tests weak; use 5 or more", len(grid.seeds)
        )
    logger.info(summary)
    if revisions:
        logger.warning(revisions)
    check_writable_dir(grid.output_dir, "output_dir")
    with GridLock(grid.output_dir) as lock, logging_redirect_tqdm():
        bar = tqdm(todo, unit="cell", smoothing=0, disable=not logger.isEnabledFor(logging.INFO) or not todo)
        for index in bar:
            cell = grid.cells[index]
            bar.set_postfix_str(cell.path)
            results[index] = _train_cell(grid, cell, hashes, lock)
            _log(results[index])
            write_report(grid, results)
        test = _test_results(grid, results, hashes, lock)
        write_report(grid, results, test)
        for result in results:  # under the lock: no process of a compare works on these any more
            if result.status == "finished":
                for leftover in remove_leftovers(run_dir(grid, result.cell)):
                    logger.info("removed %s, left by an interrupted attempt at a finished cell", leftover)
    return results + test


def _log(result: CellResult) -> None:
    if result.status == "finished":
        metric = result.cell.data.metric
        value = result.metrics.get(metric)
        shown = (
            f"{metric} {value:.4f}" if isinstance(value, (int, float)) else f"no {metric!r} in metrics.json"
        )
        logger.info("%s: %s (%.0f s)", result.cell.path, shown, result.seconds or 0)
    else:
        logger.warning("%s failed: %s (log: %s)", result.cell.path, result.error, result.location)
