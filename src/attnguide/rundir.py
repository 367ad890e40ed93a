"""Run directories: refused when they would clobber something, written aside and renamed when complete.

A run (``attnguide train``, ``analyze``) is written under a hidden ``.<name>.partial`` directory
beside the output directory and renamed into place only when everything is written, so a crash or
a kill never leaves a half-written run where a finished one is expected. A finished training run
holds ``run.json`` (every setting) and ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import AttnguideError


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, for run.json."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_output_dir(output_dir: Path, overwrite: bool, inputs: dict[str, str | None] | None = None) -> None:
    """Refuse to clobber a file or an existing non-empty directory unless asked to, a directory that
    holds one of the run's ``inputs`` (flag -> path) even then, the current directory (or one
    holding it), which a finished run cannot be renamed into, and a place the run cannot be written."""
    if Path.cwd().resolve().is_relative_to(output_dir.resolve()):
        raise AttnguideError(f"{output_dir}: is the current directory or holds it; name a new directory")
    if output_dir.exists() and not output_dir.is_dir():
        raise AttnguideError(f"{output_dir}: output path exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise AttnguideError(
            f"{output_dir}: output directory exists and is not empty (use --overwrite to replace it)"
        )
    for flag, value in (inputs or {}).items():
        given = Path(value).expanduser() if value else None
        if (
            given
            and given.exists()
            and output_dir.is_dir()
            and given.resolve().is_relative_to(output_dir.resolve())
        ):
            raise AttnguideError(
                f"{output_dir}: holds {flag} {value}, which replacing the directory would delete; "
                "name another --output-dir"
            )
    check_writable_location(output_dir, "the run directory")
    partial = partial_path(output_dir)
    if partial.exists() and not partial.is_dir():
        raise AttnguideError(
            f"{partial}: a file where the unfinished run is written; move it away or name another "
            "--output-dir"
        )


def check_writable_location(path: Path, what: str) -> None:
    """Refuse, before any work, a ``path`` that cannot be written beside or created: the nearest
    existing folder above it is a file, or one this user may not write in."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise AttnguideError(f"{path}: cannot write {what}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AttnguideError(f"{path}: cannot write {what}: no permission to write in {parent}")


def partial_path(output_dir: Path) -> Path:
    """Where the run for ``output_dir`` is written until it is complete."""
    return output_dir.parent / f".{output_dir.name}.partial"


def fresh_partial(output_dir: Path) -> Path:
    """An empty hidden directory beside ``output_dir`` where the run is written until complete."""
    partial = partial_path(output_dir)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def publish(partial: Path, output_dir: Path) -> None:
    """Move a finished partial run into place, replacing an old run only once the new one is complete."""
    old = output_dir.parent / f".{output_dir.name}.old"
    if output_dir.exists():
        output_dir.rename(old)
    partial.rename(output_dir)
    if old.exists():
        shutil.rmtree(old)


def is_complete_run(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds a finished run (its run.json and metrics.json were written)."""
    return (output_dir / "run.json").is_file() and (output_dir / "metrics.json").is_file()


CHECKPOINT = re.compile(r"checkpoint-(\d+)")
"""The name of a Trainer checkpoint inside a run directory."""


def checkpoint_step(path: Path) -> int:
    """The step N of a ``checkpoint-N`` folder; -1 for any other name."""
    match = CHECKPOINT.fullmatch(path.name)
    return int(match[1]) if match else -1


def check_finished_model(model: str | Path) -> None:
    """Refuse a model directory that is an unfinished training run (a hidden ``.NAME.partial``, or a
    run directory without its run.json and metrics.json) unless it is a ``checkpoint-N`` inside one,
    which the user names on purpose; a plain model directory (no run files) passes."""
    path = Path(model).expanduser()
    if not path.is_dir() or checkpoint_step(path) >= 0:
        return
    hidden = path.name.startswith(".") and path.name.endswith(".partial")
    run_files = any((path / name).exists() for name in ("run.json", "metrics.json", "settings.json"))
    if not hidden and (not run_files or is_complete_run(path)):
        return
    steps = sorted((checkpoint_step(c), c) for c in path.iterdir() if checkpoint_step(c) >= 0 and c.is_dir())
    example = f", e.g. {steps[-1][1]}" if steps else "; it holds none yet"
    raise AttnguideError(
        f"{model}: an unfinished training run (no run.json and metrics.json); evaluate a finished "
        f"run, or name a checkpoint inside it (.../checkpoint-N){example}"
    )


def read_run(path: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of a run directory; None for a plain model directory (or an unreadable file)."""
    try:
        run = json.loads((Path(path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None
