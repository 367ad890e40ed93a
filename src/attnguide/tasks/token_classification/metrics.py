"""Entity-level metrics of tagged sentences, from seqeval (CoNLL's conlleval definitions)."""

from __future__ import annotations

ENTITY_METRICS = ("f1", "precision", "recall", "accuracy")
"""The measures ``compare`` may choose by: entity F1 (the default), precision and recall, micro
over entities, and token accuracy."""


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """``precision``, ``recall`` and ``f1`` over whole entity mentions (micro over entities; a
    mention counts only with its exact span and type), ``accuracy`` over words, and the same per
    entity type under ``per_type`` (with each type's ``support``, the number of gold mentions)."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {
        name: {
            key.replace("f1-score", "f1"): int(value) if key == "support" else float(value)
            for key, value in values.items()
        }
        for name, values in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "per_type": per_type,
    }
