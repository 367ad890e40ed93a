"""Token classification: tagged sentences (IOB/BIO, CoNLL, JSONL, datasets), sub-word windows,
entity-level metrics, the training run and the task."""
