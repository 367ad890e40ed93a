"""The Trainer's checkpoints inside a run's partial directory: which are complete, which to resume from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..rundir import checkpoint_step


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
    checkpoints = sorted(partial.glob("checkpoint-*"), key=checkpoint_step)
    complete = [c for c in checkpoints if _is_complete_checkpoint(c)]
    return complete[-1] if complete else None


def drop_incomplete_checkpoints(partial: Path) -> None:
    """Remove checkpoints that a kill interrupted while they were being written."""
    for checkpoint in partial.glob("checkpoint-*"):
        if not _is_complete_checkpoint(checkpoint):
            shutil.rmtree(checkpoint)
