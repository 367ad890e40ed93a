"""How well a sentence-transformers model scores pairs with no training: the cosine similarity of
its embeddings against the pairs' scores (the zero-shot figure beside a fine-tuned scorer)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ...models import load_sentence_transformer, model_location
from .scored_pairs import ScoredPairs


def similarity_metrics(model: nn.Module, data: ScoredPairs, batch_size: int = 64) -> tuple[dict, list[float]]:
    """``spearman`` and ``pearson`` of the cosine similarities (the library's evaluator), and the
    cosine of every pair."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    pairs = data.pairs
    evaluator = EmbeddingSimilarityEvaluator(
        pairs.text_a,
        pairs.text_b,
        data.scores,
        batch_size=batch_size,
        similarity_fn_names=["cosine"],
        write_csv=False,
    )
    results = evaluator(model)
    first = model.encode(
        pairs.text_a, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True
    )
    second = model.encode(
        pairs.text_b, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True
    )
    cosines = (first * second).sum(-1).tolist()
    metrics = {
        name: float(results[f"{evaluator.name}_{name}_cosine".lstrip("_")])
        for name in ("spearman", "pearson")
    }
    return metrics, cosines


def is_sentence_transformer(name: str) -> bool:
    """Whether ``name`` (a folder, short name or Hub id) holds a sentence-transformers model."""
    return (Path(model_location(name)) / "modules.json").is_file()


def zero_shot_similarity(name: str, data: ScoredPairs, max_length: int, batch_size: int) -> dict[str, float]:
    """``zero_shot_pearson`` and ``zero_shot_spearman`` of the model ``name`` used as a bi-encoder
    before any fine-tuning; empty where it is not a sentence-transformers model."""
    if not is_sentence_transformer(name):
        return {}
    metrics, _ = similarity_metrics(load_sentence_transformer(name, max_length), data, batch_size)
    return {f"zero_shot_{k}": v for k, v in metrics.items()}
