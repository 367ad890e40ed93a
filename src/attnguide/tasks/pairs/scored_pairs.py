"""Scored pairs: the pair readers of ``tasks.pairs`` with the label read as a number, and the
``--label-range`` that bounds the scores (the regression and embedding tasks read them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import AttnguideError, DataError
from ...training.options import option
from ..readers import Columns
from .data import PairData, load_hf_dataset, read_pairs


def label_range_option() -> Any:
    """The ``label_range`` field of the options of a task that reads scores (``--label-range``)."""
    return option(
        None,
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="the scores' bounds: train on scores scaled to 0-1 and refuse scores outside (default: "
        "the training scores' range, which scales but refuses nothing; with eval: the range the model "
        "was trained with, refusing scores outside it where it was given with --label-range)",
    )


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


@dataclass
class ScoredPairs:
    """Pairs (``PairData``, whose labels are the scores as read) and their scores as numbers."""

    pairs: PairData
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)

    def first(self, limit: int) -> ScoredPairs:
        pairs = self.pairs.first(limit)
        return ScoredPairs(pairs, self.scores[: len(pairs)])


def _scored(pairs: PairData, label_range: tuple[float, float] | None) -> ScoredPairs:
    scores = []
    for index, text in enumerate(pairs.labels):
        try:
            score = float(text)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise pairs.error(index, f"expected a number as the score, found {text!r}")
        if label_range is not None and not label_range[0] <= score <= label_range[1]:
            low, high = label_range
            raise pairs.error(index, f"score {score:g} is outside --label-range {low:g} {high:g}")
        scores.append(score)
    return ScoredPairs(pairs, scores)


def check_scores_vary(data: ScoredPairs) -> ScoredPairs:
    """``data``, refused where every score is the same: the correlations it is measured with are
    undefined for constant scores."""
    if len(set(data.scores)) < 2:
        raise DataError(
            data.pairs.source,
            f"every score is {data.scores[0]:g}; measuring correlations needs scores that differ",
        )
    return data


def read_scored(
    path: str | Path,
    format: str = "auto",
    columns: Columns | None = None,
    label_range: tuple[float, float] | None = None,
) -> ScoredPairs:
    """A file of pairs with a score: SICK (``relatedness_score``), STS-B's GLUE TSV (``score``), or
    any CSV/TSV/JSONL whose score column ``--label`` names. A score that is not a number, or lies
    outside ``label_range``, is an error naming the file and line."""
    return _scored(read_pairs(path, format, columns, scores=True), label_range)


def load_hf_scored(
    name_or_path: str | Path,
    split: str,
    columns: Columns | None = None,
    label_range: tuple[float, float] | None = None,
) -> ScoredPairs:
    """One split of a HuggingFace dataset of pairs with a score column (``--label`` names it)."""
    return _scored(load_hf_dataset(name_or_path, split, columns), label_range)
