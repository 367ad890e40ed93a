"""Sentence pairs (or single sentences) with a label, shared by the tasks that take pairs
(classification, regression, embedding): readers of the common layouts (``data``), tokenising
(``encoding``), pairs with a score (``scored_pairs``) and a bi-encoder's cosine scores of them
(``cosine_similarity``)."""
