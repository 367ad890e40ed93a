"""Sentence-pair (or single-sentence) classification: the task and its options (``task``), the
training run and evaluation (``run``); the readers and tokenising it uses are in ``tasks.pairs``."""
