"""Task metrics, from scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """``CLASSIFICATION_METRICS``: accuracy and macro-averaged F1."""
    from sklearn.metrics import accuracy_score, f1_score  # here: scikit-learn is slow to import

    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
    }
