"""Best-checkpoint selection and early stopping, for every task.

After each epoch the run is evaluated with the task's own evaluation (the one that writes
metrics.json, so the chosen measure means the same as in the report), the weights of the best epoch
so far are kept in the run's ``.partial`` folder, and training stops after ``patience`` epochs
without improvement. At the end the best weights are put back before the final evaluation. The
kept weights and ``selection.json`` survive an interruption: ``--resume`` goes on with them.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from ..errors import AttnguideError
from ..files import atomic_path, write_json

logger = logging.getLogger("attnguide")

STATE_FILE = "selection.json"
WEIGHTS_FILE = "best-weights.pt"


class BestCheckpoint(TrainerCallback):
    """Evaluate after each epoch, keep the best weights (higher ``metric`` is better), stop early."""

    def __init__(
        self,
        model: torch.nn.Module,
        evaluate: Callable[[Path], dict[str, float]],
        metric: str,
        patience: int | None,
        folder: Path,
    ) -> None:
        self.model = model
        self.evaluate = evaluate
        self.metric = metric
        self.patience = patience
        self.folder = folder
        self.history: list[dict[str, Any]] = []
        self.stopped_early = False

    @property
    def best(self) -> dict[str, Any] | None:
        """The best evaluation so far (the earliest of equal ones)."""
        return max(self.history, key=lambda h: h["value"], default=None)

    def resume(self, step: int) -> None:
        """Take back the history of an interrupted run, up to the checkpoint it resumes from."""
        state_file = self.folder / STATE_FILE
        if state_file.is_file():
            saved = json.loads(state_file.read_text(encoding="utf-8"))
            self.history = [h for h in saved["history"] if h["step"] <= step]
            best = self.best
            if best is not None and best["step"] != saved["best_step"]:
                logger.warning("%s: kept best weights newer than the checkpoint; forgotten", self.folder)
                self.history = []

    def on_epoch_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        with tempfile.TemporaryDirectory(prefix=".selection-", dir=self.folder) as scratch:
            metrics = self.evaluate(Path(scratch))
        value = metrics.get(self.metric)
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise AttnguideError(
                f"--select-best {self.metric}: the evaluation gives no such figure; it gives "
                + ", ".join(sorted(k for k, v in metrics.items() if isinstance(v, (int, float))))
            )
        previous = self.best
        self.history.append({"epoch": round(state.epoch), "step": state.global_step, "value": value})
        if previous is None or value > previous["value"]:
            with atomic_path(self.folder / WEIGHTS_FILE) as tmp:
                torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, tmp)
            logger.info("epoch %d: %s %.4f, the best so far", round(state.epoch), self.metric, value)
        else:
            logger.info(
                "epoch %d: %s %.4f, not above %.4f (epoch %d)",
                round(state.epoch), self.metric, value, previous["value"], previous["epoch"],
            )  # fmt: skip
        best = self.best
        write_json(self.folder / STATE_FILE, {"history": self.history, "best_step": best["step"]})
        waited = len(self.history) - 1 - self.history.index(best)
        last_epoch = state.max_steps and state.global_step >= state.max_steps
        if self.patience is not None and waited >= self.patience and not last_epoch:
            self.stopped_early = True
            control.should_training_stop = True
            logger.info("no improvement in %d epochs: stopping early", self.patience)

    def restore_best(self) -> dict[str, Any]:
        """Put the best epoch's weights back into the model; returns what run.json records."""
        best = self.best
        if best is None:
            raise AttnguideError("--select-best: the run ended before its first evaluation")
        weights = torch.load(self.folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.model.load_state_dict(weights)
        (self.folder / WEIGHTS_FILE).unlink()
        (self.folder / STATE_FILE).unlink()
        return {
            "metric": self.metric,
            "best_epoch": best["epoch"],
            "best_step": best["step"],
            "best_value": best["value"],
            "patience": self.patience,
            "stopped_early": self.stopped_early,
            "history": self.history,
        }
