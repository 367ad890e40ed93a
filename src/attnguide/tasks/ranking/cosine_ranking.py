"""Ranking with a bi-encoder: queries and documents embedded on their own by a sentence-transformers
model, candidates ranked by cosine similarity; trained on (query, relevant document, irrelevant
document) rows with the multiple-negatives ranking loss. Also the zero-shot figures of a starting
model that is a sentence-transformers model, the baseline any fine-tuned ranker has to beat."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ...guiding.config import GuideConfig
from ...models import load_sentence_transformer
from ..eval_pass import bi_encoder_measures
from .data import RankingData
from .ranking_metrics import Run, ranking_metrics
from .trec_runs import RankingEvaluation, build_run

logger = logging.getLogger("attnguide")

ZERO_SHOT_MEASURES = ("map", "mrr", "ndcg@10", "p@1")


def triplets(data: RankingData, seed: int) -> Dataset:
    """One (anchor: query, positive: a relevant document, negative: an irrelevant one) row per
    relevant candidate; the negative is drawn from the query's own irrelevant candidates (its hard
    negatives) or, for a query without any, from the other queries' (seeded). Where no candidate
    at all is irrelevant, the rows are (anchor, positive) only: the loss's in-batch negatives."""
    rng = np.random.default_rng(seed)
    wrong: dict[str, list[str]] = {}
    for candidate in data.candidates:
        if data.relevance(candidate) <= 0:
            wrong.setdefault(candidate.qid, []).append(candidate.text)
    everything = [text for texts in wrong.values() for text in texts]
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for candidate in data.candidates:
        if data.relevance(candidate) > 0:
            pool = wrong.get(candidate.qid) or everything
            rows["anchor"].append(data.queries[candidate.qid])
            rows["positive"].append(candidate.text)
            if pool:
                rows["negative"].append(pool[int(rng.integers(len(pool)))])
    if not everything:
        del rows["negative"]
    return Dataset.from_dict(rows)


def cosine_run(model: nn.Module, data: RankingData, batch_size: int = 64) -> Run:
    """Every candidate scored by the cosine similarity of its query's and its own embedding."""
    qids = list(data.queries)
    queries = model.encode([data.queries[q] for q in qids], batch_size=batch_size, normalize_embeddings=True)
    documents = model.encode(
        [c.text for c in data.candidates], batch_size=batch_size, normalize_embeddings=True
    )
    row = {qid: i for i, qid in enumerate(qids)}
    scores = [float(queries[row[c.qid]] @ documents[i]) for i, c in enumerate(data.candidates)]
    return build_run(data, scores)


def evaluate_bi_encoder(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: RankingData,
    max_length: int,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
    keep_unanswerable: bool = False,
) -> RankingEvaluation:
    """Rank by cosine similarity and measure the ranking, with the attention measures of the model's
    transformer over the queries and documents, each on its own as the bi-encoder reads them."""
    run = cosine_run(model, data, batch_size)
    metrics = ranking_metrics(data.qrels, run, keep_unanswerable)
    texts = [*data.queries.values(), *(c.text for c in data.candidates)]
    measures = bi_encoder_measures(model, tokenizer, texts, max_length, guide_config, batch_size)
    return RankingEvaluation(run, {**metrics, **measures})


def is_sentence_transformer(name: str) -> bool:
    """Whether ``name`` is a local sentence-transformers model (a folder with a modules.json)."""
    return (Path(name).expanduser() / "modules.json").is_file()


def zero_shot_metrics(
    name: str, data: RankingData, max_length: int, batch_size: int, keep_unanswerable: bool
) -> dict:
    """``zero_shot_map``, ``zero_shot_mrr``, ... of the model ``name`` used as a bi-encoder without
    any training, where it is a sentence-transformers model; else nothing."""
    if not is_sentence_transformer(name):
        return {}
    model = load_sentence_transformer(name, max_length)
    metrics = ranking_metrics(data.qrels, cosine_run(model, data, batch_size), keep_unanswerable)
    return {f"zero_shot_{measure}": metrics[measure] for measure in ZERO_SHOT_MEASURES}


def report_against_zero_shot(metrics: dict) -> None:
    """Say how the fine-tuned ranker compares with the starting model used zero-shot; a warning
    where it ranks worse."""
    if "zero_shot_map" not in metrics or "map" not in metrics:
        return
    line = (
        f"MAP {metrics['map']:.4f}, MRR {metrics['mrr']:.4f} fine-tuned; the starting model as a zero-shot "
        f"bi-encoder: MAP {metrics['zero_shot_map']:.4f}, MRR {metrics['zero_shot_mrr']:.4f}"
    )
    if metrics["map"] < metrics["zero_shot_map"]:
        logger.warning("%s: the fine-tuned ranker ranks below the model it started from", line)
    else:
        logger.info(line)
