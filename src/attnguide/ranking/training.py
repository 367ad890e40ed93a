"""``attnguide train --task ranking`` as a function: fine-tune a cross-encoder reranker, guided or not."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import ir_measures
import torch
from transformers import DataCollatorWithPadding, TrainingArguments, set_seed

from ..callbacks import route_logs_to_stderr
from ..capture import model_shape
from ..errors import AttnguideError
from ..io import write_json, write_jsonl, write_text
from ..models import default_model_path, load_classifier, load_tokenizer
from ..rundir import check_output_dir, file_sha256, fresh_partial, library_versions, publish
from ..trainer import GuidedTrainer
from ..training import TrainOptions, _final_train_losses
from .data import RANKING_FORMATS, RankingData, read_ranking
from .encoding import encode_candidates
from .evaluation import evaluate_ranking
from .grouping import ListwiseCollator, ListwiseGroups
from .losses import RANKING_LOSSES
from .scoring import prediction_rows, trec_run_text

logger = logging.getLogger("attnguide")


@dataclass
class RankingOptions(TrainOptions):
    """Every setting of a ranking run: those of ``TrainOptions`` and the ranking ones.

    ``train``/``dev`` are CSV files, or qrels files of the trec layout (with ``queries``, ``docs``
    and optional candidate runs ``train_run``/``dev_run``). ``batch_size`` counts pairs: a listwise
    batch holds ``batch_size // (1 + negatives)`` groups (at least one).
    """

    ranking_format: str = "auto"
    queries: str | None = None
    docs: str | None = None
    train_run: str | None = None
    dev_run: str | None = None
    ranking_loss: str = "pointwise"
    negatives: int = 7
    keep_unanswerable: bool = False
    run_tag: str = "attnguide"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset is not None:
            raise AttnguideError("--task ranking reads files: give --train FILE, not --dataset")
        if self.ranking_format not in RANKING_FORMATS:
            raise AttnguideError(f"--ranking-format must be one of {', '.join(RANKING_FORMATS)}")
        if self.ranking_loss not in RANKING_LOSSES:
            raise AttnguideError(f"--ranking-loss must be one of {', '.join(RANKING_LOSSES)}")
        if self.negatives < 1:
            raise AttnguideError(f"--negatives must be at least 1, got {self.negatives}")
        if not self.run_tag or any(ch.isspace() for ch in self.run_tag):
            raise AttnguideError(f"--run-tag must be one word, got {self.run_tag!r}")
        if self.dev_run is not None and self.dev is None:
            raise AttnguideError("--dev-run needs --dev, the qrels of the dev queries")
        if self.resume:
            raise AttnguideError("--resume is not supported with --task ranking yet")
        if self.ranking_loss == "listwise" and self.sampling == "group_by_length":
            raise AttnguideError("--sampling group_by_length works with the pointwise loss only")


def _read(options: RankingOptions, path: str | None, run: str | None) -> RankingData | None:
    if path is None:
        return None
    return read_ranking(path, options.ranking_format, options.queries, options.docs, run)


def _data_record(data: RankingData, truncated: int) -> dict:
    """What run.json says about one data set."""
    return {
        "source": data.source,
        "layout": data.layout,
        **data.summary(),
        "truncated_pairs": truncated,
        "sha256": {path: file_sha256(path) for path in data.files},
    }


def run_ranking_training(options: RankingOptions) -> dict[str, float]:
    """Fine-tune a reranker, evaluate it on the dev data, and write the run directory; returns the metrics.

    Beside the files of a classification run, the directory holds ``dev.run`` (TREC run of the dev
    ranking) and ``dev_predictions.jsonl`` (every dev candidate with its rank and score).
    """
    started = time.time()
    output_dir = Path(options.output_dir)
    check_output_dir(output_dir, options.overwrite)
    train_data = _read(options, options.train, options.train_run)
    dev_data = _read(options, options.dev, options.dev_run)
    model_name = options.model or default_model_path()
    tokenizer = load_tokenizer(model_name)
    set_seed(options.seed)  # the new scoring head is initialised here, before the Trainer seeds
    model = load_classifier(model_name, ["relevance"])  # one output: the pair's score
    options.guide.layer_indices(model_shape(model)[0])  # a bad --layers fails before any work
    listwise = options.ranking_loss == "listwise"
    train_pairs = encode_candidates(train_data, tokenizer, options.max_length, with_labels=not listwise)
    dev_pairs = encode_candidates(dev_data, tokenizer, options.max_length) if dev_data is not None else None
    if listwise:
        train_set = ListwiseGroups(train_pairs.dataset, train_data, options.negatives, options.seed)
        if len(train_set) == 0:
            raise AttnguideError(f"{train_data.source}: no query has both relevant and irrelevant candidates")
        collator = ListwiseCollator(tokenizer)
        per_batch = max(1, options.batch_size // (1 + options.negatives))
        logger.info(
            "listwise batches of %d groups (%d pairs)", per_batch, per_batch * (1 + options.negatives)
        )
    else:
        train_set, collator, per_batch = (
            train_pairs.dataset,
            DataCollatorWithPadding(tokenizer),
            options.batch_size,
        )

    partial = fresh_partial(output_dir)
    args = TrainingArguments(
        output_dir=str(partial),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=per_batch,
        learning_rate=options.lr,
        weight_decay=options.weight_decay,
        warmup_steps=options.warmup_ratio,
        seed=options.seed,
        logging_steps=options.logging_steps,
        eval_strategy="no",
        save_strategy="steps" if options.save_steps else "epoch",
        save_steps=options.save_steps or 500,
        save_total_limit=1,
        train_sampling_strategy=options.sampling,
        remove_unused_columns=False,  # listwise items are groups, not model inputs
        average_tokens_across_devices=False,  # the ranking losses are per-batch means
        report_to=options.report_to,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not logger.isEnabledFor(logging.INFO),
    )
    trainer = GuidedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=collator,
        processing_class=tokenizer,
        compute_loss_func=RANKING_LOSSES[options.ranking_loss],
        guide_config=options.guide,
        nonfinite=options.nonfinite,
    )
    route_logs_to_stderr(trainer)
    try:
        trainer.train()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    trainer.save_model(str(partial))

    metrics: dict[str, float] = {}
    if dev_data is not None:
        evaluation = evaluate_ranking(
            model,
            tokenizer,
            dev_data,
            dev_pairs,
            options.guide,
            options.eval_batch_size,
            options.keep_unanswerable,
        )
        metrics.update(evaluation.metrics)
        write_jsonl(partial / "dev_predictions.jsonl", prediction_rows(dev_data, evaluation.run))
        write_text(partial / "dev.run", trec_run_text(evaluation.run, options.run_tag))
    metrics.update(_final_train_losses(trainer.state.log_history))
    write_json(partial / "metrics.json", metrics)
    write_json(partial / "log_history.json", trainer.state.log_history)
    write_json(
        partial / "run.json",
        {
            "command": sys.argv,
            "task": "ranking",
            "options": {**asdict(options), "guide": options.guide.to_dict(), "model": model_name},
            "capture": trainer.capture.route if trainer.capture is not None else None,
            "data": {
                "train": _data_record(train_data, train_pairs.truncated),
                **({"dev": _data_record(dev_data, dev_pairs.truncated)} if dev_data is not None else {}),
            },
            "versions": {**library_versions(), "ir-measures": ir_measures.__version__},
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
