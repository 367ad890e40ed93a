"""The options of a regression run."""

from __future__ import annotations

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
    (predictions are scaled back), and ``regression_loss``: ``mse`` on the output as it is, or ``bce``,
    binary cross-entropy of the output's sigmoid against the scaled scores (which needs the range)."""

    format: str = "auto"
    columns: Columns = field(default_factory=Columns)
    label_range: tuple[float, float] | None = None
    regression_loss: str = "mse"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in SCORE_FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(SCORE_FORMATS)}, got {self.format!r}")
        check_label_range(self.label_range)
        if self.regression_loss not in LOSSES:
            raise AttnguideError(
                f"--regression-loss must be one of {', '.join(LOSSES)}, got {self.regression_loss!r}"
            )
        if outputs_logits(self.regression_loss) and self.label_range is None:
            raise AttnguideError(
                "--regression-loss bce needs --label-range LOW HIGH: it trains on scores scaled to 0-1"
            )


def outputs_logits(regression_loss: str | None) -> bool:
    """Whether a model trained with ``regression_loss`` outputs a logit whose sigmoid is the scaled
    score (``bce``), rather than the score itself (``mse``)."""
    return regression_loss == "bce"


def check_label_range(label_range: tuple[float, float] | None) -> None:
    if label_range is not None and not label_range[0] < label_range[1]:
        raise AttnguideError(f"--label-range LOW HIGH: LOW must be below HIGH, got {label_range}")
