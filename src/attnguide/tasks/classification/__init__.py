"""Sentence-pair (or single-sentence) classification: readers of the common layouts (``data``),
tokenising (``encoding``), metrics, evaluation, the training run (``run``) and the task (``task``)."""
