"""``TrainingRun``: the base of every task's training run, the steps that ``pipeline.run_training``
drives, with what the tasks share: reading a split from a file or ``--dataset``, reporting the last
training losses where there is no dev data, and describing the data in run.json; and ``TrainSetup``,
what a run gives the Trainer.

A task's run (``tasks/<task>/run.py``) sets ``name`` and ``adapter_task_type`` and writes ``read``,
``load_model``, ``encode``, ``evaluate_dev`` and ``data_record`` (``read_file``/``read_dataset``
where it reads with ``read_split``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

from ..rundir import file_sha256
from .options import TrainOptions


@dataclass
class TrainSetup:
    """What a task gives the Trainer: the training data and how to batch it, and how to train on it."""

    dataset: Any
    collator: Callable
    batch_size: int  # per device
    eval_dataset: Any = None  # evaluated by the Trainer after every epoch
    compute_loss: Callable | None = None  # the Trainer's compute_loss_func (None: the model's own loss)
    arguments: dict[str, Any] = field(default_factory=dict)  # TrainingArguments overrides
    arguments_class: type[TrainingArguments] = TrainingArguments
    trainer: Callable[..., Any] | None = None
    """Builds the Trainer from ``model``, ``args``, ``setup``, ``tokenizer`` and ``options``
    (None: ``guided_trainer``); the Trainer says its capture in ``.capture``."""


def final_train_losses(log_history: list[dict]) -> dict[str, float]:
    """The last logged value of each training loss part (``train_loss``, ``train_task_loss``, ...)."""
    final: dict[str, float] = {}
    for entry in log_history:
        if "loss" in entry:
            final.update({f"train_{k}": v for k, v in entry.items() if k.endswith("loss")})
    return final


def source_sha256(source: str) -> str | None:
    """The SHA-256 of a data file; None for a data set that is not one file (``--dataset``)."""
    return file_sha256(source) if Path(source).is_file() else None


class TrainingRun:
    """One training run of a task, made from its options by ``Task.start``."""

    name: str
    """The task's name, recorded in run.json (``classification``, ``ranking``)."""
    adapter_task_type: str
    """PEFT's task type of the model's head (``SEQ_CLS``, ``TOKEN_CLS``), for ``--lora-r``."""
    train_losses_with_dev = False
    """Whether the dev metrics come with the last training losses (they always do without dev data)."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options
        self.train_data: Any = None
        self.dev_data: Any = None

    def read_split(self, path: str | None, split: str | None, **how: Any) -> Any:
        """A data file (``path``: ``read_file``), else a split of ``--dataset`` (``read_dataset``),
        else None; ``how`` goes to either."""
        if path is not None:
            return self.read_file(path, **how)
        if self.options.dataset is not None and split is not None:
            return self.read_dataset(self.options.dataset, split, **how)
        return None

    def read_file(self, path: str, **how: Any) -> Any:
        """One data file of the task."""
        raise NotImplementedError

    def read_dataset(self, name: str, split: str, **how: Any) -> Any:
        """One split of a HuggingFace dataset (``--dataset``), for the tasks that read them."""
        raise NotImplementedError

    def read(self) -> list[str]:
        """Read the training and dev data; returns the model's output labels."""
        raise NotImplementedError

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        """The model to fine-tune, with a fresh head for ``labels``."""
        raise NotImplementedError

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        """Tokenise the data and say how to train on it."""
        raise NotImplementedError

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        """The run's metrics (``evaluate_dev``; without dev data, the last logged training losses)."""
        if self.dev_data is None:  # no dev data: the last logged training losses are all there is to report
            return final_train_losses(log_history)
        metrics = self.evaluate_dev(model, tokenizer, run_dir)
        return {**metrics, **final_train_losses(log_history)} if self.train_losses_with_dev else metrics

    def evaluate_dev(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run_dir: Path
    ) -> dict[str, float]:
        """The dev metrics; writes the dev predictions into ``run_dir``."""
        raise NotImplementedError

    def record(self) -> dict:
        """The run.json fields that describe the task's data: ``data``, by split (``data_record``)."""
        splits = (("train", self.train_data), ("dev", self.dev_data))
        return {"data": {split: self.data_record(split, data) for split, data in splits if data is not None}}

    def data_record(self, split: str, data: Any) -> dict:
        """What run.json says about the data of one split (``train``, ``dev``)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Versions of the libraries the task adds, for run.json."""
        return {}
