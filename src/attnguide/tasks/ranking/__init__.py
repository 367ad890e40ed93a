"""Ranking with attention guiding: readers, ranking losses, metrics and the training runs of a
cross-encoder (``cross_encoder_run``) and a bi-encoder (``bi_encoder_run``).

A reranker is a sequence classifier with one output, the score of a (query, document) pair (or a
bi-encoder's cosine of their embeddings); each query's candidates are ranked by score and the
ranking is measured with ir-measures.
"""

from .data import Candidate, RankingData, read_ranking
from .ranking_metrics import ranking_metrics

__all__ = ["Candidate", "RankingData", "ranking_metrics", "read_ranking"]
