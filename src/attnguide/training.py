"""``attnguide train`` as a function: read data, fine-tune with guiding, write a complete run directory."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, TrainingArguments, set_seed

from .callbacks import route_logs_to_stderr
from .capture import model_shape
from .config import GuideConfig
from .data import PairData, label_list, load_hf_dataset, read_pairs
from .encoding import encode_pairs
from .errors import AttnguideError
from .evaluation import Evaluation, evaluate
from .io import write_json, write_jsonl
from .models import default_model_path, load_classifier, load_tokenizer
from .rundir import check_output_dir, file_sha256, fresh_partial, library_versions, publish
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
    overwrite: bool = False
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise AttnguideError(
                    f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        if not self.epochs > 0:
            raise AttnguideError(f"--epochs must be positive, got {self.epochs}")
        if not self.lr > 0:
            raise AttnguideError(f"--lr must be positive, got {self.lr}")
        if (self.train is None) == (self.dataset is None):
            raise AttnguideError("give the training data with exactly one of --train FILE or --dataset NAME")


def _read(options: TrainOptions, path: str | None, split: str | None) -> PairData | None:
    columns = {"text_a": options.text_a, "text_b": options.text_b, "label": options.label}
    if options.dataset is not None:
        return None if split is None else load_hf_dataset(options.dataset, split, **columns)
    return None if path is None else read_pairs(path, options.format, **columns)


def _final_train_losses(log_history: list[dict]) -> dict[str, float]:
    """``train_loss`` over the whole run and the last logged value of each loss part (task, mdg, ...)."""
    final: dict[str, float] = {}
    for entry in log_history:
        if "loss" in entry:
            final.update({f"train_{k}": v for k, v in entry.items() if k.endswith("_loss")})
        if "train_loss" in entry:
            final["train_loss"] = entry["train_loss"]
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


def run_training(options: TrainOptions) -> dict[str, float]:
    """Fine-tune, evaluate on the dev data, and write the run directory; returns the dev metrics."""
    started = time.time()
    output_dir = Path(options.output_dir)
    check_output_dir(output_dir, options.overwrite)
    train_data = _read(options, options.train, options.train_split)
    dev_data = _read(options, options.dev, options.dev_split)
    labels = label_list(train_data, dev_data)
    logger.info(
        "training data: %s, %d examples, layout %s, labels %s",
        train_data.source,
        len(train_data),
        train_data.layout,
        ", ".join(labels),
    )
    model_name = options.model or default_model_path()
    tokenizer = load_tokenizer(model_name)
    set_seed(options.seed)  # the new classification head is initialised here, before the Trainer seeds
    model = load_classifier(model_name, labels)
    options.guide.layer_indices(model_shape(model)[0])  # a bad --layers fails before any work
    label2id = model.config.label2id
    train_set = encode_pairs(train_data, tokenizer, options.max_length, label2id)
    dev_set = (
        encode_pairs(dev_data, tokenizer, options.max_length, label2id) if dev_data is not None else None
    )

    partial = fresh_partial(output_dir)
    args = TrainingArguments(
        output_dir=str(partial),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.lr,
        weight_decay=options.weight_decay,
        warmup_steps=options.warmup_ratio,
        seed=options.seed,
        logging_steps=options.logging_steps,
        eval_strategy="epoch" if dev_set is not None else "no",
        save_strategy="epoch",
        save_total_limit=1,
        report_to=options.report_to,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not logger.isEnabledFor(logging.INFO),
    )
    trainer = GuidedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        guide_config=options.guide,
    )
    route_logs_to_stderr(trainer)
    trainer.train()
    trainer.save_model(str(partial))

    metrics: dict[str, float] = {}
    if dev_set is not None:
        evaluation = evaluate(model, tokenizer, dev_set, options.guide, options.eval_batch_size)
        metrics.update(evaluation.metrics)
        write_jsonl(
            partial / "dev_predictions.jsonl", prediction_rows(dev_data, evaluation, model.config.id2label)
        )
    metrics.update(_final_train_losses(trainer.state.log_history))
    write_json(partial / "metrics.json", metrics)
    write_json(partial / "log_history.json", trainer.state.log_history)
    write_json(
        partial / "run.json",
        {
            "command": sys.argv,
            "options": {**asdict(options), "guide": options.guide.to_dict(), "model": model_name},
            "capture": trainer.capture.route if trainer.capture is not None else None,
            "labels": labels,
            "data": {
                name: {
                    "source": data.source,
                    "layout": data.layout,
                    "examples": len(data),
                    "dropped": data.dropped,
                    "sha256": file_sha256(data.source) if Path(data.source).is_file() else None,
                }
                for name, data in (("train", train_data), ("dev", dev_data))
                if data is not None
            },
            "versions": library_versions(),
            "device": str(args.device),
            "seconds": round(time.time() - started, 1),
        },
    )
    if not options.keep_checkpoints:
        for checkpoint in partial.glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
    publish(partial, output_dir)
    logger.info("run written to %s", output_dir)
    return metrics
