"""``TrainOptions``: every setting of a training run that does not depend on the task.

Each task extends it with its own data options (``ClassificationOptions``, ``RankingOptions``);
``run.json`` records them all (``to_record``). Each setting is declared once, as a field made by
``option``, whose metadata (help, flag, choices, the commands that take it) the command line builds
its flags from (``cli/flags.py``). Imports nothing heavy: options are checked before any model or
data is loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

from ..errors import AttnguideError
from ..guiding.config import GuideConfig

COMMANDS = ("train", "eval", "analyze")
"""The commands a task's option may apply to (``option(commands=...)``)."""

UNSET = object()
"""``option(flag_default=UNSET)``: the flag's default is the field's."""


def option(
    default: Any = MISSING,
    *,
    help: str | None = None,
    flag: str | None = None,
    flag_default: Any = UNSET,
    commands: tuple[str, ...] = COMMANDS,
    data_input: bool = False,
    default_factory: Any = MISSING,
    **argparse_keywords: Any,
) -> Any:
    """A dataclass field that is also a command-line flag: ``flag`` (default ``--NAME``), ``help``,
    ``flag_default`` (where the flag's default differs from the field's, e.g. None for a setting a
    ``--recipe`` presets), the ``commands`` of a task's option, whether it names a file or model the
    run reads (``data_input``: the output may not be one of them), and any other ``argparse``
    keywords (``choices``, ``metavar``, ``nargs``, ``action``, ``type``, ``required``)."""
    cli = {"help": help, "flag": flag, "commands": commands, "data_input": data_input, **argparse_keywords}
    if flag_default is not UNSET:
        cli["default"] = flag_default
    return field(default=default, default_factory=default_factory, metadata={"cli": cli})


def flag_of(option_field: Field) -> str:
    """The command-line flag of a field made by ``option`` (``--NAME`` unless it names another)."""
    return option_field.metadata["cli"]["flag"] or "--" + option_field.name.replace("_", "-")


SAMPLINGS = ("random", "sequential", "group_by_length")
LR_SCHEDULERS = ("linear", "constant", "cosine")
RECIPE_SETTINGS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "lr_scheduler", "max_length")
"""The settings a ``--recipe`` presets (besides keeping the best checkpoint)."""

RECIPES: dict[str, dict[str, Any]] = {
    "attnguide": {},
    "paper": {
        "batch_size": 64,
        "lr": 1e-5,
        "weight_decay": 0.0,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "max_length": 256,
        "select_best": True,
    },
}
"""Presets of training settings; flags given on the command line win. ``attnguide``: the defaults of
``TrainOptions``. ``paper``: the authors' released code (Adam without weight decay, lr 1e-5 held
constant with no warm-up, batch 64, 256 tokens, the checkpoint with the best dev metric kept), with
its epochs per kind of data set (``paper_epochs``)."""


def paper_epochs(task: str) -> float:
    """The released code's epochs: 5 for its ranking data (as for MultiNLI), 20 for the small
    classification sets (MedNLI), which SICK, MSRP and NCBI disease resemble."""
    return 5.0 if task == "ranking" else 20.0


NONFINITE_POLICIES = ("stop", "skip")

LORA_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")

# What a run computes does not depend on these (activation checkpointing recomputes the same layers).
NOT_SETTINGS = (
    "output_dir", "overwrite", "resume", "keep_checkpoints", "activation_checkpointing", "recipe",
)  # fmt: skip


@dataclass
class TrainOptions:
    """The settings of a training run that every task shares."""

    output_dir: str = option(required=True, help="run directory to write")
    train: str | None = option(None, help="training data file", data_input=True)
    dev: str | None = option(None, help="dev data file: evaluated each epoch and at the end", data_input=True)
    model: str | None = option(
        None, help="model directory or Hub id (default: the packaged MiniLM-L6-H384)", data_input=True
    )
    dataset: str | None = option(
        None, help="a HuggingFace dataset name or a local directory saved with save_to_disk", data_input=True
    )
    train_split: str = option("train", help="split of --dataset to train on (default: train)")
    dev_split: str | None = option(None, help="split of --dataset to evaluate on, e.g. validation")
    guide: GuideConfig = field(default_factory=GuideConfig)  # flags made from the guide registry
    epochs: float = option(3.0, flag_default=None)
    batch_size: int = option(32, flag_default=None)
    eval_batch_size: int = option(64)
    lr: float = option(5e-5, flag_default=None)
    weight_decay: float = option(0.01, flag_default=None)
    warmup_ratio: float = option(0.1, flag_default=None)
    lr_scheduler: str = option(
        "linear", flag_default=None, choices=LR_SCHEDULERS, help="learning-rate schedule after warm-up"
    )
    max_length: int = option(128, flag_default=None, help="tokens per pair; longer pairs are truncated")
    seed: int = option(42)
    logging_steps: int = option(20)
    report_to: str = option("none", help="Trainer loggers, e.g. tensorboard (default: none)")
    bf16: bool = option(False, help="bfloat16 mixed precision (GPUs from Ampere on)")
    activation_checkpointing: bool = option(
        False,
        help="recompute each layer in the backward pass instead of keeping its activations: less memory, "
        "about a third more time; the same result",
    )
    save_steps: int | None = option(None, help="checkpoint every N steps (default: every epoch)")
    lora_r: int | None = option(
        None, help="LoRA rank; given, a LoRA adapter is trained instead of all weights"
    )
    lora_alpha: float = option(16.0, flag_default=None, help="LoRA scaling α (default: 16)")
    lora_dropout: float = option(0.1, flag_default=None, help="dropout on the LoRA input (default: 0.1)")
    lora_targets: str = option(
        "query,value",
        flag_default=None,
        help="comma-separated names of the linear layers to adapt (default: query,value, as in BERT)",
    )
    sampling: str = option(
        "random", choices=SAMPLINGS, help="order of training examples (default: random, seeded)"
    )
    nonfinite: str = option(
        "stop",
        flag="--skip-nonfinite",
        action="store_true",
        flag_default=False,
        help="skip a batch whose loss is NaN or infinite instead of stopping (one process only)",
    )
    overwrite: bool = option(False, help="replace a non-empty output directory")
    resume: bool = option(False, help="continue an interrupted run from its newest checkpoint")
    keep_checkpoints: bool = option(False, help="keep the last checkpoint in the finished run")
    recipe: str = option(
        "attnguide",
        choices=tuple(RECIPES),
        help="preset of the settings below: attnguide (3 epochs, batch 32, lr 5e-5 with 10%% warm-up and "
        "linear decay, weight decay 0.01, 128 tokens, the last checkpoint) or paper (the authors' "
        "released code: Adam without weight decay, constant lr 1e-5, batch 64, 256 tokens, 20 epochs "
        "(5 for ranking), the checkpoint with the best dev metric)",
    )
    select_metric: str | None = option(
        None,
        flag="--select-best",
        nargs="?",
        const="",
        metavar="METRIC",
        help="evaluate on dev after each epoch and keep the best checkpoint by METRIC (default: the "
        "task's first metric); 'last' keeps the last one (the attnguide recipe's default)",
    )
    early_stopping: int | None = option(
        None, metavar="EPOCHS", help="with --select-best, stop after this many epochs without improvement"
    )

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
        if not 0 < self.lr < math.inf:
            raise AttnguideError(f"--lr must be a positive finite number, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise AttnguideError(f"--weight-decay must be a finite number >= 0, got {self.weight_decay}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise AttnguideError(
                f"--lr-scheduler: expected one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler!r}"
            )
        if self.recipe not in RECIPES:
            raise AttnguideError(f"--recipe: expected one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise AttnguideError(f"--early-stopping must be at least 1 epoch, got {self.early_stopping}")
        if self.early_stopping is not None and self.select_metric is None:
            raise AttnguideError(
                "--early-stopping needs --select-best METRIC (the measure to wait on), not last"
            )
        if self.select_metric is not None and self.dev is None and self.dev_split is None:
            raise AttnguideError(
                "--select-best needs dev data (--dev or --dev-split) to choose on"
                + ("; --recipe paper selects the best checkpoint (--select-best last keeps the last)"
                   if self.recipe == "paper" else "")
            )  # fmt: skip
        if self.save_steps is not None and self.save_steps < 1:
            raise AttnguideError(f"--save-steps must be at least 1, got {self.save_steps}")
        if (self.train is None) == (self.dataset is None):
            raise AttnguideError("give the training data with exactly one of --train FILE or --dataset NAME")
        if self.dev is not None and self.dev_split is not None:
            raise AttnguideError("give the dev data with one of --dev FILE or --dev-split SPLIT, not both")
        if self.dataset is None and self.dev_split is not None:
            raise AttnguideError("--dev-split names a split of --dataset; with --train, give --dev FILE")
        if self.lora_r is not None:
            check_lora(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets)
        else:
            changed = (k for k in LORA_SETTINGS[1:] if getattr(self, k) != option_default(k))
            lora_options({k: getattr(self, k) for k in changed})
        check_loggers(self.report_to)  # last: it imports transformers

    def to_record(self) -> dict[str, Any]:
        """Every option as plain JSON values, as ``run.json`` records them: the guide settings as
        ``GuideConfig.to_dict`` gives them, named data columns at the top level."""
        data = {**asdict(self), "guide": self.guide.to_dict()}
        data.update(data.pop("columns", None) or {})
        if self.lora_r is None:  # full fine-tuning: the adapter settings mean nothing
            data = {k: v for k, v in data.items() if k not in LORA_SETTINGS}
        return json.loads(json.dumps(data))

    def data_inputs(self) -> dict[str, Any]:
        """The files, data set and model the run reads, by flag (``--train``, ``--queries``, ...)."""
        return {flag_of(f): getattr(self, f.name) for f in fields(self) if _cli(f).get("data_input")}

    def settings(self) -> dict[str, Any]:
        """The options that decide what a run computes: a resumed run must match them."""
        return {k: v for k, v in self.to_record().items() if k not in NOT_SETTINGS}


def _cli(option_field: Field) -> dict[str, Any]:
    return option_field.metadata.get("cli", {})


def newer_settings() -> dict[str, Any]:
    """Settings added after runs were first written, at their defaults: an interrupted run that
    recorded none of them had these values (it resumes under a newer version)."""
    return {name: option_default(name) for name in ("lr_scheduler", "select_metric", "early_stopping")}


def option_default(name: str) -> Any:
    """The default of one setting of ``TrainOptions`` (``lora_alpha``: 16.0, ``epochs``: 3.0, ...)."""
    return next(f.default for f in fields(TrainOptions) if f.name == name)


def lora_options(given: dict[str, Any]) -> dict[str, Any]:
    """Every LoRA setting of ``TrainOptions`` from those the user gave (``None``: not given), the
    others at their defaults; refuses an adapter setting without ``--lora-r``, which a full
    fine-tune would silently ignore."""
    if given.get("lora_r") is None:
        extra = next((name for name in LORA_SETTINGS[1:] if given.get(name) is not None), None)
        if extra is not None:
            flag = "--" + extra.replace("_", "-")
            raise AttnguideError(
                f"{flag} needs --lora-r: without a LoRA rank every weight is trained and {flag} "
                "would be ignored"
            )
    return {name: option_default(name) if given.get(name) is None else given[name] for name in LORA_SETTINGS}


def check_lora(r: int, alpha: float, dropout: float, targets: str) -> None:
    """Refuse LoRA settings that cannot train, in one line."""
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise AttnguideError(f"--lora-r must be a whole number >= 1, got {r!r}")
    if not 0 < alpha < math.inf:
        raise AttnguideError(f"--lora-alpha must be a positive finite number, got {alpha}")
    if not 0 <= dropout < 1:
        raise AttnguideError(f"--lora-dropout must be at least 0 and below 1, got {dropout}")
    if not isinstance(targets, str) or not [t for t in targets.split(",") if t.strip()]:
        raise AttnguideError("--lora-targets: name at least one module, e.g. query,value")


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
