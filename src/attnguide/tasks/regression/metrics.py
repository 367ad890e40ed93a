"""Regression metrics: correlations from SciPy, the squared error from scikit-learn."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

logger = logging.getLogger("attnguide")

REGRESSION_METRICS = ("pearson", "spearman")
"""The measures ``compare`` may choose by (higher is better): Pearson's r (the default) and
Spearman's rho. ``mse`` is reported too."""


def regression_metrics(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """``pearson``, ``spearman`` and ``mse`` of the predictions against the gold scores."""
    from scipy.stats import ConstantInputWarning, pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConstantInputWarning)
        metrics = {
            "pearson": float(pearsonr(gold, predicted).statistic),
            "spearman": float(spearmanr(gold, predicted).statistic),
            "mse": float(mean_squared_error(gold, predicted)),
        }
    if any(issubclass(w.category, ConstantInputWarning) for w in caught):
        logger.warning("every prediction is the same score: the correlations are undefined (NaN)")
    return metrics
