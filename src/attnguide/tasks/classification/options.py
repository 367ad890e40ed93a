"""The options of a classification run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..pairs.data import FORMATS
from ..readers import Columns


@dataclass
class ClassificationOptions(TrainOptions):
    """Every setting of a classification run: those of ``TrainOptions``, the data layout and the
    named columns."""

    format: str = "auto"
    columns: Columns = field(default_factory=Columns)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
