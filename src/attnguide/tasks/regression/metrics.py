"""Regression metrics: correlations from SciPy, the squared error from scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

REGRESSION_METRICS = ("pearson", "spearman")
"""The measures ``compare`` may choose by (higher is better): Pearson's r (the default) and
Spearman's rho. ``mse`` is reported too."""


def regression_metrics(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """``pearson``, ``spearman`` and ``mse`` of the predictions against the gold scores."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    return {
        "pearson": float(pearsonr(gold, predicted).statistic),
        "spearman": float(spearmanr(gold, predicted).statistic),
        "mse": float(mean_squared_error(gold, predicted)),
    }
