"""``attnguide compare``: run a grid of ``attnguide train`` cells, resumably, and report the statistics.

Each cell runs as its own ``python -m attnguide train`` process, so a cell that fails is recorded
with the last line of its log and the grid goes on, and a killed grid leaves at most the hidden
``.seedN.partial`` directory of the cell it was running, which the next attempt at that cell
continues from its last checkpoint (``train --resume``) or replaces. A cell whose run directory
holds ``run.json`` and ``metrics.json`` is finished and never run again; if that run was made with
other settings than the cell asks for (another data file content, say) the grid stops before
running anything rather than mix the two.

Several ``compare`` processes (one per GPU, say) share a grid: each cell is claimed by a lock
beside its run directory (``.seedN.lock``), inherited by the training process, so a worker takes
the cells nobody holds and leaves the others to whoever holds them. Once it has none left to take,
it waits for the cells still held (by another worker, or by a run that a killed ``compare`` left
running) and trains any that ended unfinished; then, one worker at a time under the grid's lock
(``.compare.lock``), it evaluates on test and writes the complete report.
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
"""The grid's lock, held while the test evaluations and the complete report are made."""


def claim_path(grid: Grid, cell: Cell) -> Path:
    """The lock file by which a worker claims a cell: ``.seedN.lock`` beside its run directory."""
    folder = run_dir(grid, cell)
    return folder.parent / f".{folder.name}.lock"


class WorkLock:
    """An exclusive lock on one file (a cell's claim, or the grid's), held by ``compare`` and inherited
    by the process it starts for it, so that it stays held until both have ended: a run that a killed
    ``compare`` left training keeps its cell. The file says who holds it, for messages."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def take(self, wait: bool = False) -> bool:
        """Take the lock (waiting for it where ``wait``); whether it was taken."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        self.record()
        return True

    def holder(self) -> str:
        """Who holds the lock, as its file says: ``pid N on HOST, process M: training CELL``."""
        try:
            holder = json.loads(os.pread(self.fd, 1 << 16, 0).decode("utf-8"))
        except ValueError:
            holder = None
        if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
            return "another attnguide compare"
        worker = holder.get("worker")
        doing = f", process {worker}: {holder.get('doing')}" if worker is not None else ""
        return f"attnguide compare pid {holder['pid']} on {holder.get('host')}{doing}"

    def record(self, worker: int | None = None, doing: str | None = None) -> None:
        """Say in the lock file who holds the lock, and which process works on what now."""
        holder: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        if worker is not None:
            holder.update(worker=worker, doing=doing)
        text = json.dumps(holder).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def __enter__(self) -> WorkLock:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _run_attnguide(args: list[str], log: Path, lock: WorkLock, what: str) -> str | None:
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


def _train_cell(grid: Grid, cell: Cell, hashes: dict[str, str], lock: WorkLock) -> CellResult:
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


def _test_cell(grid: Grid, trained: CellResult, hashes: dict[str, str], lock: WorkLock) -> CellResult:
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
    grid: Grid, results: list[CellResult], hashes: dict[str, str], lock: WorkLock
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
    """Run every cell not yet finished that no other worker holds, wait for those others hold, then
    evaluate the dev choice on test; writes the report after each cell. Returns the training cells'
    results, then the test evaluations'."""
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
    with logging_redirect_tqdm():
        bar = tqdm(todo, unit="cell", smoothing=0, disable=not logger.isEnabledFor(logging.INFO) or not todo)
        held = []
        for index in bar:
            bar.set_postfix_str(grid.cells[index].path)
            if not _take_cell(grid, results, index, hashes, wait=False):
                held.append(index)
        for index in held:  # every other cell is finished or failed: wait for these
            _take_cell(grid, results, index, hashes, wait=True)
        with WorkLock(grid.output_dir / LOCK_FILE) as lock:
            lock.take(wait=True)  # one worker at a time evaluates on test and writes the complete report
            _refresh(grid, results, hashes)
            test = _test_results(grid, results, hashes, lock)
            write_report(grid, results, test)
            for result in results:
                if result.status == "finished":
                    _remove_leftovers(grid, result.cell)
    return results + test


def _take_cell(grid: Grid, results: list[CellResult], index: int, hashes: dict[str, str], wait: bool) -> bool:
    """Claim cell ``index`` and train it unless it has been finished meanwhile, then write the report;
    False (nothing done) where another worker holds it and ``wait`` is not set. The report is written
    under the claim, so that a worker waiting for this cell writes its complete report after this one."""
    from .comparison_report import write_report

    cell = grid.cells[index]
    with WorkLock(claim_path(grid, cell)) as claim:
        if not claim.take():
            if not wait:
                logger.info("%s: left to %s", cell.path, claim.holder())
                return False
            logger.info("%s: waiting for %s to end", cell.path, claim.holder())
            claim.take(wait=True)
        finished = finished_result(grid, cell, hashes)  # by the worker that held it
        results[index] = finished or _train_cell(grid, cell, hashes, claim)
        if finished is None:
            _log(results[index])
        _refresh(grid, results, hashes)
        write_report(grid, results)
    return True


def _refresh(grid: Grid, results: list[CellResult], hashes: dict[str, str]) -> None:
    """Count the cells that other workers have finished since they were last looked at."""
    for index, result in enumerate(results):
        if result.status != "finished":
            results[index] = finished_result(grid, result.cell, hashes) or result


def _remove_leftovers(grid: Grid, cell: Cell) -> None:
    """Remove what interrupted attempts left beside a finished cell, unless a process still holds it."""
    with WorkLock(claim_path(grid, cell)) as claim:
        if claim.take():
            for leftover in remove_leftovers(run_dir(grid, cell)):
                logger.info("removed %s, left by an interrupted attempt at a finished cell", leftover)


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
