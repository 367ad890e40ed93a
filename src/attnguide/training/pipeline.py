"""``attnguide train`` as a function: fine-tune with guiding and write a complete run directory.

``run_training`` is the one pipeline of every task: it checks the output directory, loads the model,
resumes or starts the run, trains, and writes and publishes the run directory. What depends on the
task (reading, encoding, the model's head, losses, evaluation, the data in run.json) comes from a
``TrainingRun`` (``training_run.py``), which each task of ``attnguide.tasks`` makes from its options.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments, set_seed

from .. import __version__
from ..capture.routes import model_shape
from ..errors import AttnguideError
from ..files import write_json
from ..models import check_max_length, default_model_path, load_tokenizer, underlying_transformer
from ..rundir import check_output_dir, checkpoint_step, fresh_partial, is_complete_run, partial_path, publish
from ..source_revision import source_revision
from .adapters import add_lora, parameter_counts
from .callbacks import EpochToDataset, RunClock, route_logs_to_stderr
from .checkpoints import drop_incomplete_checkpoints, newest_complete_checkpoint
from .options import TrainOptions, newer_settings
from .selection import BestCheckpoint
from .trainer import GuidedTrainer
from .training_run import TrainingRun, TrainSetup

logger = logging.getLogger("attnguide")


def guided_trainer(
    model: PreTrainedModel,
    args: TrainingArguments,
    setup: TrainSetup,
    tokenizer: PreTrainedTokenizerBase,
    options: TrainOptions,
) -> GuidedTrainer:
    """The Trainer of most tasks: ``GuidedTrainer`` on the task's data, collator and loss."""
    return GuidedTrainer(
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


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on, for run.json."""
    import datasets
    import sklearn

    revision = {"attnguide revision": value} if (value := source_revision()) else {}
    return {
        "attnguide": __version__,
        **revision,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _resume_point(partial: Path, settings: dict) -> Path | None:
    """The checkpoint to resume from, after checking the interrupted run had the same settings."""
    if not partial.is_dir():
        logger.info("nothing to resume: starting a new run")
        return None
    saved_file = partial / "settings.json"
    saved = json.loads(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else None
    if saved is not None:
        saved = {**newer_settings(), **saved}
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


def training_arguments(options: TrainOptions, output_dir: Path, setup: TrainSetup) -> TrainingArguments:
    """The Trainer's arguments for a run written to ``output_dir``, with the task's overrides; a
    combination the Trainer refuses (``--bf16`` on a GPU without bfloat16) is a one-line error."""
    # without a GPU, --bf16 is CPU autocast, which the Trainer allows only when told it runs there
    on_cpu = _several_cpu_processes() or (options.bf16 and not torch.cuda.is_available())
    try:
        return setup.arguments_class(
            output_dir=str(output_dir),
            num_train_epochs=options.epochs,
            per_device_train_batch_size=setup.batch_size,
            per_device_eval_batch_size=options.eval_batch_size,
            learning_rate=options.lr,
            weight_decay=options.weight_decay,
            warmup_steps=options.warmup_ratio,
            lr_scheduler_type=options.lr_scheduler,
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


def run_training(options: TrainOptions, task: TrainingRun, callbacks: Sequence[Any] = ()) -> dict[str, float]:
    """Fine-tune, evaluate on the dev data, and write the run directory; returns the metrics.

    ``callbacks`` are added to the Trainer (``attnguide tune`` reports each evaluation through one).
    Under torchrun/accelerate launch, the non-main processes return no metrics.
    """
    started = time.time()
    output_dir = Path(options.output_dir)
    if options.resume and is_complete_run(output_dir):
        logger.info("%s: the run is already complete", output_dir)
        return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    check_output_dir(output_dir, options.overwrite, options.data_inputs())
    labels = task.read()
    model_name = options.model or default_model_path()
    tokenizer = load_tokenizer(model_name)
    set_seed(options.seed)  # the new head is initialised here, before the Trainer seeds
    model = task.load_model(model_name, labels)
    if options.lora_r is not None:
        model = add_lora(model, options, task.adapter_task_type)
    encoder = underlying_transformer(model)
    check_max_length(model_name, encoder, tokenizer, options.max_length)
    options.guide.layer_indices(model_shape(encoder)[0])  # a bad --layers fails before any work
    setup = task.encode(tokenizer, encoder.config.label2id)

    partial = partial_path(output_dir)
    settings = options.settings()
    args = training_arguments(options, partial, setup)
    processes = args.distributed_state  # under torchrun/accelerate launch, only the main process writes files
    resume_from = None
    if processes.is_main_process and options.resume:
        resume_from = _resume_point(partial, settings)
    processes.wait_for_everyone()
    if not processes.is_main_process and options.resume:
        resume_from = newest_complete_checkpoint(partial)
    trainer = (setup.trainer or guided_trainer)(
        model=model, args=args, setup=setup, tokenizer=tokenizer, options=options
    )
    route_logs_to_stderr(trainer)
    clock = RunClock(resume_from, started)
    trainer.add_callback(clock)
    for callback in callbacks:
        trainer.add_callback(callback)
    if hasattr(setup.dataset, "set_epoch"):  # data drawn per epoch (listwise negatives)
        trainer.add_callback(EpochToDataset(setup.dataset))
    selection = None
    if options.select_metric is not None:
        if processes.num_processes > 1:
            raise AttnguideError("--select-best and --early-stopping run in one process only")
        selection = BestCheckpoint(
            model,
            lambda scratch: task.evaluate(model, tokenizer, [], scratch),
            options.select_metric,
            options.early_stopping,
            partial,
        )
        trainer.add_callback(selection)
    if processes.is_main_process and resume_from is None:  # written only once every check has passed
        fresh_partial(output_dir)
        write_json(partial / "settings.json", settings)
    processes.wait_for_everyone()
    if selection is not None and resume_from is not None:
        selection.resume(checkpoint_step(resume_from))
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
    chosen = selection.restore_best() if selection is not None else None
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
                "task": task.name,
                "options": {**options.to_record(), "model": model_name},
                "labels": labels,
                **parameter_counts(model),
                "resumed_from": str(resume_from) if resume_from else None,
                "capture": trainer.capture.route if trainer.capture is not None else None,
                "selection": chosen,
                **task.record(),
                "versions": {**library_versions(), **task.versions()},
                "device": str(args.device),
                "seconds": round(clock.seconds(), 1),
                "seconds_before_resuming": round(clock.before, 1) if resume_from else None,
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
