"""Trainer callbacks: training logs as readable lines on stderr, never on stdout; the epoch to the
dataset; the seconds a run has trained, carried across its checkpoints."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..files import write_json

logger = logging.getLogger("attnguide")

_HIDDEN = {"total_flos", "epoch"}


def format_logs(step: int, logs: dict) -> str:
    """``step 20 (epoch 0.53): loss 1.17, task_loss 1.07, mdg_loss 4.07, ...``"""
    parts = [
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items() if k not in _HIDDEN
    ]
    epoch = f" (epoch {logs['epoch']:.2f})" if isinstance(logs.get("epoch"), (int, float)) else ""
    return f"step {step}{epoch}: " + ", ".join(parts)


class StderrProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with log lines written above it on stderr."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = format_logs(state.global_step, logs)
            if self.training_bar is not None:
                self.training_bar.write(line, file=sys.stderr)
            else:
                logger.info(line)


class StderrLogCallback(TrainerCallback):
    """Log lines through the ``attnguide`` logger where no progress bar is shown."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            logger.info(format_logs(state.global_step, logs))


def route_logs_to_stderr(trainer) -> None:
    """Replace the Trainer's stdout printers by stderr ones, keeping the progress bar where it had one."""
    had_bar = any(isinstance(c, ProgressCallback) for c in trainer.callback_handler.callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StderrProgressCallback() if had_bar else StderrLogCallback())


class EpochToDataset(TrainerCallback):
    """Tell a training dataset with ``set_epoch`` which epoch begins, resumed epochs included.

    accelerate's data loaders pass their epoch on to such a dataset, but not the loader that skips
    the finished batches of a resumed epoch; at an epoch's start ``state.epoch`` is the epoch's
    index, or a fraction past it when a run resumes mid-epoch.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch + 1e-9))


class RunClock(TrainerCallback):
    """The seconds a run has taken over all its attempts, so that a resumed run reports its whole cost.

    Each checkpoint records the seconds spent up to it in ``attnguide-seconds.json``; a run resumed
    from that checkpoint starts its clock there. Time an interrupted attempt spent after its last
    checkpoint is lost work and is not counted. A checkpoint without the file (written by an older
    attnguide, or killed between the Trainer's files and this one) counts as 0 seconds before.
    """

    FILE = "attnguide-seconds.json"

    def __init__(self, resumed_from: Path | None, started: float) -> None:
        self.started = started  # time.time() when the attempt began, before loading and checks
        self.before = 0.0
        if resumed_from is not None:
            try:
                self.before = float(json.loads((resumed_from / self.FILE).read_text("utf-8"))["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                logger.info("%s: no record of its seconds; counting this attempt only", resumed_from)

    def seconds(self) -> float:
        """Seconds before the checkpoint resumed from plus this attempt's."""
        return self.before + time.time() - self.started

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_json(checkpoint / self.FILE, {"seconds": round(self.seconds(), 1)})
