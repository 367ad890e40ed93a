"""The options of a ranking run."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import AttnguideError
from ...training.options import TrainOptions
from .data import RANKING_FORMATS

ENCODERS = ("cross", "bi")
"""A cross-encoder scores each (query, document) pair; a bi-encoder embeds each on its own."""

RANKING_LOSSES = {
    "pointwise": "binary cross-entropy on pairs",
    "listwise": "softmax cross-entropy over one relevant and --negatives irrelevant documents of a query",
}
"""The ranking losses by name; loss ``NAME`` is ``losses.NAME_loss``."""


def check_run_tag(tag: str) -> None:
    """A TREC run's tag column is one word."""
    if not tag or any(ch.isspace() for ch in tag):
        raise AttnguideError(f"--run-tag must be one word, got {tag!r}")


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
    encoder: str = "cross"
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
        if self.encoder not in ENCODERS:
            raise AttnguideError(f"--encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.encoder == "bi" and (self.ranking_loss != "pointwise" or self.lora_r is not None):
            raise AttnguideError(
                "--encoder bi trains with the multiple-negatives ranking loss and every weight: "
                "--ranking-loss and --lora-r are for the cross-encoder"
            )
        if self.negatives < 1:
            raise AttnguideError(f"--negatives must be at least 1, got {self.negatives}")
        check_run_tag(self.run_tag)
        if self.dev_run is not None and self.dev is None:
            raise AttnguideError("--dev-run needs --dev, the qrels of the dev queries")
        if self.ranking_loss == "listwise" and self.sampling == "group_by_length":
            raise AttnguideError("--sampling group_by_length works with the pointwise loss only")
