"""Attention guiding in sentence-transformers: ``GuidedLoss`` wraps any loss of a
``SentenceTransformer`` or ``CrossEncoder`` (defined in ``attnguide.training.sentence_transformers``)."""

from .training.sentence_transformers import GuidedLoss, underlying_transformer

__all__ = ["GuidedLoss", "underlying_transformer"]
