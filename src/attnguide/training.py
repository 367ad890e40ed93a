"""``attnguide train`` as a function: read data, fine-tune with guiding, write a complete run directory.

``run_training`` is the one pipeline of every task: it checks the output directory, loads the model,
resumes or starts the run, trains, and writes and publishes the run directory. What depends on the
task (reading, encoding, losses, evaluation, the data in run.json) comes from a ``Task``;
``ClassificationTask`` is the default and ``attnguide.ranking.training.RankingTask`` the other.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from .callbacks import EpochToDataset, route_logs_to_stderr
from .capture import model_shape
from .config import GuideConfig
from .data import PairData, label_list, load_hf_dataset, read_pairs
from .encoding import encode_pairs
from .errors import AttnguideError
from .evaluation import Evaluation, evaluate
from .io import write_json, write_jsonl
from .models import check_max_length, default_model_path, load_classifier, load_tokenizer
from .rundir import (
    check_output_dir,
    drop_incomplete_checkpoints,
    file_sha256,
    fresh_partial,
    is_complete_run,
    library_versions,
    newest_complete_checkpoint,
    partial_path,
    publish,
)
from .trainer import GuidedTrainer

logger = logging.getLogger("attnguide")


@dataclass
class TrainOptions:
    """Every setting of a training run; ``run.json`` records them all."""

    output_dir: str
    train: str | None = None
    dev: str | None = None
    model: str | None = None
    format: str = "auto"
    text_a: str | None = None
    text_b: str | None = None
    label: str | None = None
    dataset: str | None = None
    train_split: str = "train"
    dev_split: str | None = None
    guide: GuideConfig = field(default_factory=GuideConfig)
    epochs: float = 3.0
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 42
    logging_steps: int = 20
    report_to: str = "none"
    bf16: bool = False
    activation_checkpointing: bool = False
    save_steps: int | None = None
    sampling: str = "random"
    nonfinite: str = "stop"
    overwrite: bool = False
    resume: bool = False
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise AttnguideError(
                    f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        if not 0 < self.epochs < math.inf:
            raise AttnguideError(f"--epochs must be a positive number, got {self.epochs}")
        if not 0 <= self.warmup_ratio < 1:
            raise AttnguideError(f"--warmup-ratio must be at least 0 and below 1, got {self.warmup_ratio}")
        if not 0 <= self.seed < 2**32:
            raise AttnguideError(f"--seed must be a whole number from 0 to 2**32 - 1, got {self.seed}")
        check_loggers(self.report_to)
        if not self.lr > 0:
            raise AttnguideError(f"--lr must be positive, got {self.lr}")
        if self.save_steps is not None and self.save_steps < 1:
            raise AttnguideError(f"--save-steps must be at least 1, got {self.save_steps}")
        if (self.train is None) == (self.dataset is None):
            raise AttnguideError("give the training data with exactly one of --train FILE or --dataset NAME")
        if self.dev is not None and self.dev_split is not None:
            raise AttnguideError("give the dev data with one of --dev FILE or --dev-split SPLIT, not both")
        if self.dataset is None and self.dev_split is not None:
            raise AttnguideError("--dev-split names a split of --dataset; with --train, give --dev FILE")


def check_loggers(report_to: str) -> None:
    """Fail in one line on a ``--report-to`` naming a logger the Trainer does not know, or one whose
    package is not installed."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    if report_to in ("none", "all"):
        return
    for name in report_to.split(","):
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            raise AttnguideError(
                f"--report-to: unknown logger {name!r}; expected none, all or any of {known}"
            )
        if name not in get_available_reporting_integrations():
            raise AttnguideError(f"--report-to {name}: its package is not installed (pip install {name})")


def _read(options: TrainOptions, path: str | None, split: str | None) -> PairData | None:
    """A data file (``path``), else a split of ``--dataset``, else None."""
    columns = {"text_a": options.text_a, "text_b": options.text_b, "label": options.label}
    if path is not None:
        return read_pairs(path, options.format, **columns)
    if options.dataset is not None and split is not None:
        return load_hf_dataset(options.dataset, split, **columns)
    return None


def final_train_losses(log_history: list[dict]) -> dict[str, float]:
    """The last logged value of each training loss part (``train_loss``, ``train_task_loss``, ...)."""
    final: dict[str, float] = {}
    for entry in log_history:
        if "loss" in entry:
            final.update({f"train_{k}": v for k, v in entry.items() if k.endswith("loss")})
    return final


def prediction_rows(data: PairData, evaluation: Evaluation, id2label: dict[int, str]) -> list[dict]:
    """One JSON-ready row per example: its texts, gold label, predicted label and class probabilities."""
    rows = []
    for i, (pred, probs) in enumerate(zip(evaluation.predictions, evaluation.probabilities, strict=True)):
        rows.append(
            {
                "index": i,
                "text_a": data.text_a[i],
                "text_b": data.text_b[i] if data.text_b is not None else None,
                "label": data.labels[i] if data.labels else None,
                "prediction": id2label[pred],
                "probabilities": {id2label[j]: round(p, 6) for j, p in enumerate(probs)},
            }
        )
    return rows


def saved_guide_config(run_dir: str | Path) -> GuideConfig:
    """The guiding settings a run directory was trained with (defaults for a plain model directory)."""
    run_file = Path(run_dir) / "run.json"
    if not run_file.is_file():
        return GuideConfig()
    settings = json.loads(run_file.read_text(encoding="utf-8"))["options"]["guide"]
    return GuideConfig(**settings)


# what a run computes does not depend on these (activation checkpointing recomputes the same layers)
_NOT_SETTINGS = ("output_dir", "overwrite", "resume", "keep_checkpoints", "activation_checkpointing")


def _settings(options: TrainOptions) -> dict:
    """The options that decide what a run computes: a resumed run must match them."""
    data = {**asdict(options), "guide": options.guide.to_dict()}
    return json.loads(json.dumps({k: v for k, v in data.items() if k not in _NOT_SETTINGS}))


def _resume_point(partial: Path, settings: dict) -> Path | None:
    """The checkpoint to resume from, after checking the interrupted run had the same settings."""
    if not partial.is_dir():
        logger.info("nothing to resume: starting a new run")
        return None
    saved_file = partial / "settings.json"
    saved = json.loads(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else None
    if saved is not None and saved != settings:
        key = next(k for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k))
        raise AttnguideError(
            f"{partial}: the interrupted run has {key}={saved.get(key)!r}, this command "
            f"{settings.get(key)!r}; resume with the same settings or start again with --overwrite"
        )
    drop_incomplete_checkpoints(partial)
    checkpoint = newest_complete_checkpoint(partial)
    logger.info("resuming from %s", checkpoint) if checkpoint else logger.info(
        "no checkpoint yet: starting over"
    )
    return checkpoint


def _several_cpu_processes() -> bool:
    """Launched as several processes with no GPU: the Trainer only sets up DDP over CPUs when told."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class TrainSetup:
    """What a task gives the Trainer: the training data and how to batch it, and how to train on it."""

    dataset: Any
    collator: Callable
    batch_size: int  # per device
    eval_dataset: Any = None  # evaluated by the Trainer after every epoch
    compute_loss: Callable | None = None  # the Trainer's compute_loss_func (None: the model's own loss)
    arguments: dict[str, Any] = field(default_factory=dict)  # TrainingArguments overrides


class Task(Protocol):
    """The steps of a run that depend on the task, called in this order by ``run_training``."""

    def read(self) -> list[str]:
        """Read the training and dev data; returns the model's output labels."""

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        """Tokenise the data and say how to train on it."""

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        """The run's metrics; writes the dev predictions into ``run_dir``."""

    def record(self) -> dict:
        """The run.json fields that describe the task and its data (``labels``, ``data``, ...)."""

    def versions(self) -> dict[str, str]:
        """Versions of the libraries the task adds, for run.json."""


class ClassificationTask:
    """Pair classification: labelled pairs in, accuracy and the attention diagnostics out."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options

    def read(self) -> list[str]:
        options = self.options
        self.train_data = _read(options, options.train, options.train_split)
        self.dev_data = _read(options, options.dev, options.dev_split)
        self.labels = label_list(self.train_data, self.dev_data)
        logger.info(
            "training data: %s, %d examples, layout %s, labels %s",
            self.train_data.source,
            len(self.train_data),
            self.train_data.layout,
            ", ".join(self.labels),
        )
        return self.labels

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        max_length = self.options.max_length
        train_set = encode_pairs(self.train_data, tokenizer, max_length, label2id)
        dev_data = self.dev_data
        self.dev_set = (
            encode_pairs(dev_data, tokenizer, max_length, label2id) if dev_data is not None else None
        )
        return TrainSetup(
            dataset=train_set,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=self.options.batch_size,
            eval_dataset=self.dev_set,
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        if self.dev_set is None:  # no dev data: the last logged training losses are all there is to report
            return final_train_losses(log_history)
        options = self.options
        evaluation = evaluate(model, tokenizer, self.dev_set, options.guide, options.eval_batch_size)
        write_jsonl(
            run_dir / "dev_predictions.jsonl",
            prediction_rows(self.dev_data, evaluation, model.config.id2label),
        )
        return evaluation.metrics

    def record(self) -> dict:
        return {
            "labels": self.labels,
            "data": {
                name: {
                    "source": data.source,
                    "layout": data.layout,
                    "examples": len(data),
                    "dropped": data.dropped,
                    "sha256": file_sha256(data.source) if Path(data.source).is_file() else None,
                }
                for name, data in (("train", self.train_data), ("dev", self.dev_data))
                if data is not None
            },
        }

    def versions(self) -> dict[str, str]:
        return {}


def training_arguments(options: TrainOptions, output_dir: Path, setup: TrainSetup) -> TrainingArguments:
    """The Trainer's arguments for a run written to ``output_dir``, with the task's overrides; a
    combination the Trainer refuses (``--bf16`` on a GPU without bfloat16) is a one-line error."""
    # without a GPU, --bf16 is CPU autocast, which the Trainer allows only when told it runs there
    on_cpu = _several_cpu_processes() or (options.bf16 and not torch.cuda.is_available())
    try:
        return TrainingArguments(
            output_dir=str(output_dir),
            num_train_epochs=options.epochs,
            per_device_train_batch_size=setup.batch_size,
            per_device_eval_batch_size=options.eval_batch_size,
            learning_rate=options.lr,
            weight_decay=options.weight_decay,
            warmup_steps=options.warmup_ratio,
            seed=options.seed,
            logging_steps=options.logging_steps,
            eval_strategy="epoch" if setup.eval_dataset is not None else "no",
            save_strategy="steps" if options.save_steps else "epoch",
            save_steps=options.save_steps or 500,
            save_total_limit=1,
            train_sampling_strategy=options.sampling,
            report_to=options.report_to.split(","),
            bf16=options.bf16,
            activation_checkpointing=options.activation_checkpointing,
            dataloader_pin_memory=torch.cuda.is_available(),
            use_cpu=on_cpu,
            disable_tqdm=not logger.isEnabledFor(logging.INFO),
            **setup.arguments,
        )
    except ValueError as error:
        raise AttnguideError(f"the Trainer refuses these settings: {str(error).splitlines()[0]}") from None


def run_training(options: TrainOptions, task: Task | None = None) -> dict[str, float]:
    """Fine-tune, evaluate on the dev data, and write the run directory; returns the metrics.

    ``task`` defaults to ``ClassificationTask(options)``. Under torchrun/accelerate launch, the
    non-main processes return no metrics.
    """
    started = time.time()
    task = task if task is not None else ClassificationTask(options)
    output_dir = Path(options.output_dir)
    if options.resume and is_complete_run(output_dir):
        logger.info("%s: the run is already complete", output_dir)
        return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    check_output_dir(output_dir, options.overwrite)
    labels = task.read()
    model_name = options.model or default_model_path()
    tokenizer = load_tokenizer(model_name)
    set_seed(options.seed)  # the new head is initialised here, before the Trainer seeds
    model = load_classifier(model_name, labels)
    check_max_length(model_name, model, tokenizer, options.max_length)
    options.guide.layer_indices(model_shape(model)[0])  # a bad --layers fails before any work
    setup = task.encode(tokenizer, model.config.label2id)

    partial = partial_path(output_dir)
    settings = _settings(options)
    args = training_arguments(options, partial, setup)
    processes = args.distributed_state  # under torchrun/accelerate launch, only the main process writes files
    resume_from = None
    if processes.is_main_process and options.resume:
        resume_from = _resume_point(partial, settings)
    processes.wait_for_everyone()
    if not processes.is_main_process and options.resume:
        resume_from = newest_complete_checkpoint(partial)
    trainer = GuidedTrainer(
        model=model,
        args=args,
        train_dataset=setup.dataset,
        eval_dataset=setup.eval_dataset,
        data_collator=setup.collator,
        processing_class=tokenizer,
        compute_loss_func=setup.compute_loss,
        guide_config=options.guide,
        nonfinite=options.nonfinite,
    )
    route_logs_to_stderr(trainer)
    if hasattr(setup.dataset, "set_epoch"):  # data drawn per epoch (listwise negatives)
        trainer.add_callback(EpochToDataset(setup.dataset))
    if processes.is_main_process and resume_from is None:  # written only once every check has passed
        fresh_partial(output_dir)
        write_json(partial / "settings.json", settings)
    processes.wait_for_everyone()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except BaseException as error:
        kept = newest_complete_checkpoint(partial)
        if kept is None:
            if processes.is_main_process:
                shutil.rmtree(partial, ignore_errors=True)
            raise
        if isinstance(error, AttnguideError):
            raise type(error)(
                f"{error}; the last complete checkpoint is {kept} (continue with --resume)"
            ) from None
        raise
    trainer.save_model(str(partial))
    metrics: dict[str, float] = {}
    if processes.is_main_process:
        metrics.update(task.evaluate(model, tokenizer, trainer.state.log_history, partial))
        write_json(partial / "metrics.json", metrics)
        write_json(partial / "log_history.json", trainer.state.log_history)
        write_json(
            partial / "run.json",
            {
                "command": sys.argv,
                "options": {**asdict(options), "guide": options.guide.to_dict(), "model": model_name},
                "resumed_from": str(resume_from) if resume_from else None,
                "capture": trainer.capture.route if trainer.capture is not None else None,
                **task.record(),
                "versions": {**library_versions(), **task.versions()},
                "device": str(args.device),
                "seconds": round(time.time() - started, 1),
            },
        )
        (partial / "settings.json").unlink()  # only needed to resume; run.json records every setting
        if not options.keep_checkpoints:
            for checkpoint in partial.glob("checkpoint-*"):
                shutil.rmtree(checkpoint)
        publish(partial, output_dir)
    processes.wait_for_everyone()
    logger.info("run written to %s", output_dir)
    return metrics
