"""The options of a regression run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..pairs.data import SCORE_FORMATS
from ..readers import Columns

LOSSES = ("mse", "bce")


@dataclass
class RegressionOptions(TrainOptions):
    """Every setting of a regression run: those of ``TrainOptions``, the layout, the named columns
    (``label``: the score), ``label_range``: the scores' bounds, to train on scores scaled to 0-1
    (predictions are scaled back), and ``regression_loss``: ``bce`` (the default), binary cross-entropy
    of the output's sigmoid against the scaled scores (without ``label_range``, the training scores'
    lowest and highest value are the bounds), or ``mse`` on the output as it is."""

    format: str = "auto"
    columns: Columns = field(default_factory=Columns)
    label_range: tuple[float, float] | None = None
    regression_loss: str = "bce"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in SCORE_FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(SCORE_FORMATS)}, got {self.format!r}")
        check_label_range(self.label_range)
        if self.regression_loss not in LOSSES:
            raise AttnguideError(
                f"--regression-loss must be one of {', '.join(LOSSES)}, got {self.regression_loss!r}"
            )


def outputs_logits(regression_loss: str | None) -> bool:
    """Whether a model trained with ``regression_loss`` outputs a logit whose sigmoid is the scaled
    score (``bce``), rather than the score itself (``mse``)."""
    return regression_loss == "bce"


def check_label_range(label_range: tuple[float, float] | None) -> None:
    """Refuse a ``--label-range`` that cannot scale scores: a bound that is not a finite number, or
    an empty range (LOW not below HIGH)."""
    if label_range is None:
        return
    low, high = label_range
    if not (math.isfinite(low) and math.isfinite(high)):
        raise AttnguideError(f"--label-range {low:g} {high:g}: LOW and HIGH must be finite numbers")
    if not low < high:
        raise AttnguideError(f"--label-range {low:g} {high:g}: LOW must be below HIGH")
