"""Run directories: refused when they would clobber something, written aside and renamed when complete.

A run is written under a hidden ``.<name>.partial`` directory beside the output directory and
renamed into place only when everything is written, so a crash or a kill never leaves a
half-written run where a finished one is expected.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from pathlib import Path

import torch
import transformers

from . import __version__
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


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on, for run.json."""
    import datasets
    import sklearn

    return {
        "attnguide": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "scikit-learn": sklearn.__version__,
    }


def partial_path(output_dir: Path) -> Path:
    """Where the run for ``output_dir`` is written until it is complete."""
    return output_dir.parent / f".{output_dir.name}.partial"


def is_complete_run(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds a finished run (its run.json and metrics.json were written)."""
    return (output_dir / "run.json").is_file() and (output_dir / "metrics.json").is_file()


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def _is_complete_checkpoint(path: Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint is complete once it parses."""
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all((path / name).is_file() for name in ("optimizer.pt", "scheduler.pt")) and any(
        path.glob("*.safetensors")
    )


def newest_complete_checkpoint(partial: Path) -> Path | None:
    """The complete ``checkpoint-N`` with the largest N, if any."""
    checkpoints = sorted(partial.glob("checkpoint-*"), key=_checkpoint_step)
    complete = [c for c in checkpoints if _is_complete_checkpoint(c)]
    return complete[-1] if complete else None


def drop_incomplete_checkpoints(partial: Path) -> None:
    """Remove checkpoints that a kill interrupted while they were being written."""
    for checkpoint in partial.glob("checkpoint-*"):
        if not _is_complete_checkpoint(checkpoint):
            shutil.rmtree(checkpoint)
