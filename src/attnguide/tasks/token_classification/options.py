"""The options of a token classification run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..readers import Columns
from .data import FORMATS


@dataclass
class TokenClassificationOptions(TrainOptions):
    """Every setting of a token classification run: those of ``TrainOptions``, the data layout, the
    named JSONL/dataset keys (``text_a``: the tokens, ``label``: the tags) and the overlap of the
    windows that split a long sentence."""

    format: str = "auto"
    columns: Columns = field(default_factory=Columns)
    stride: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.columns.text_b is not None:
            raise AttnguideError("--text-b: a tagged sentence has one text (its tokens, --text-a)")
        if self.stride < 0:
            raise AttnguideError(f"--stride must be at least 0, got {self.stride}")
