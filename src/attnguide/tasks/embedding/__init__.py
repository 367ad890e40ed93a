"""Embedding: a sentence-transformers bi-encoder fine-tuned with the library's trainer and losses,
guided through ``GuidedLoss``, evaluated by the Spearman correlation of cosine similarities."""
