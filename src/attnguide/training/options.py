"""``TrainOptions``: every setting of a training run that does not depend on the task.

Each task extends it with its own data options (``ClassificationOptions``, ``RankingOptions``);
``run.json`` records them all (``to_record``). Imports nothing heavy: options are checked before
any model or data is loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import AttnguideError
from ..guiding.config import GuideConfig

SAMPLINGS = ("random", "sequential", "group_by_length")
NONFINITE_POLICIES = ("stop", "skip")

LORA_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")

# What a run computes does not depend on these (activation checkpointing recomputes the same layers).
NOT_SETTINGS = ("output_dir", "overwrite", "resume", "keep_checkpoints", "activation_checkpointing")


@dataclass
class TrainOptions:
    """The settings of a training run that every task shares."""

    output_dir: str
    train: str | None = None
    dev: str | None = None
    model: str | None = None
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
    lora_r: int | None = None
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_targets: str = "query,value"
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
        if self.lora_r is not None:
            check_lora(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets)
        check_loggers(self.report_to)  # last: it imports transformers

    def to_record(self) -> dict[str, Any]:
        """Every option as plain JSON values, as ``run.json`` records them: the guide settings as
        ``GuideConfig.to_dict`` gives them, named data columns at the top level."""
        data = {**asdict(self), "guide": self.guide.to_dict()}
        data.update(data.pop("columns", None) or {})
        if self.lora_r is None:  # full fine-tuning: the adapter settings mean nothing
            data = {k: v for k, v in data.items() if k not in LORA_SETTINGS}
        return json.loads(json.dumps(data))

    def settings(self) -> dict[str, Any]:
        """The options that decide what a run computes: a resumed run must match them."""
        return {k: v for k, v in self.to_record().items() if k not in NOT_SETTINGS}


def check_lora(r: int, alpha: float, dropout: float, targets: str) -> None:
    """Refuse LoRA settings that cannot train, in one line."""
    if r < 1:
        raise AttnguideError(f"--lora-r must be at least 1, got {r}")
    if not alpha > 0:
        raise AttnguideError(f"--lora-alpha must be positive, got {alpha}")
    if not 0 <= dropout < 1:
        raise AttnguideError(f"--lora-dropout must be at least 0 and below 1, got {dropout}")
    if not [t for t in targets.split(",") if t.strip()]:
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
