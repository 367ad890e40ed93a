"""The options of an embedding run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..pairs.data import SCORE_FORMATS
from ..readers import Columns
from ..regression.options import check_label_range

EMBEDDING_LOSSES = {
    "auto": "cosent for pairs with a score, mnrl for (anchor, positive) rows",
    "cosent": "CoSENTLoss: orders the pairs' cosine similarities as their scores",
    "cosine": "CosineSimilarityLoss: the squared error of each pair's cosine and its score, scaled to 0-1",
    "mnrl": "MultipleNegativesRankingLoss: each anchor's positive against the batch's other texts",
}


@dataclass
class EmbeddingOptions(TrainOptions):
    """Every setting of an embedding run: those of ``TrainOptions``, the layout and columns, the
    scores' range, the loss, and ``positive_label``: train on the labelled pairs that have it, as
    (anchor, positive) rows."""

    format: str = "auto"
    columns: Columns = field(default_factory=Columns)
    label_range: tuple[float, float] | None = None
    embedding_loss: str = "auto"
    positive_label: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in SCORE_FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(SCORE_FORMATS)}, got {self.format!r}")
        if self.embedding_loss not in EMBEDDING_LOSSES:
            raise AttnguideError(f"--embedding-loss must be one of {', '.join(EMBEDDING_LOSSES)}")
        check_label_range(self.label_range)
        if self.lora_r is not None:
            raise AttnguideError("--task embedding trains every weight; --lora-r is for the other tasks")
        if self.dataset is not None:
            raise AttnguideError("--task embedding reads files: give --train FILE, not --dataset")
