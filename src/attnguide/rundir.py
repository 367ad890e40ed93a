"""Run directories: refused when they would clobber something, written aside and renamed when complete.

A run (``attnguide train``, ``analyze``) is written under a hidden ``.<name>.partial`` directory
beside the output directory and renamed into place only when everything is written, so a crash or
a kill never leaves a half-written run where a finished one is expected. A finished training run
holds ``run.json`` (every setting) and ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
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


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse to clobber a file or an existing non-empty directory unless asked to, and the current
    directory (or one holding it), which a finished run cannot be renamed into."""
    if Path.cwd().resolve().is_relative_to(output_dir.resolve()):
        raise AttnguideError(f"{output_dir}: is the current directory or holds it; name a new directory")
    if output_dir.exists() and not output_dir.is_dir():
        raise AttnguideError(f"{output_dir}: output path exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise AttnguideError(
            f"{output_dir}: output directory exists and is not empty (use --overwrite to replace it)"
        )


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


def read_run(path: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of a run directory; None for a plain model directory (or an unreadable file)."""
    try:
        run = json.loads((Path(path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None
