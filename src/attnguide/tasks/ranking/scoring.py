"""Scoring candidate pairs with a cross-encoder, and the rankings that follow: run dicts, TREC run files."""

from __future__ import annotations

import logging

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from .data import RankingData
from .metrics import Run

logger = logging.getLogger("attnguide")


@torch.no_grad()
def score_pairs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int = 64
) -> list[float]:
    """The model's single logit for every encoded pair, in dataset order, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    columns = [c for c in dataset.column_names if c != "labels"]
    loader = DataLoader(
        dataset.select_columns(columns), batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    scores: list[float] = []
    for batch in tqdm(loader, desc="scoring", leave=False, disable=not logger.isEnabledFor(logging.INFO)):
        scores += model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float().tolist()
    return scores


def build_run(data: RankingData, scores: list[float]) -> Run:
    """``run[qid][docid] = score`` for every candidate."""
    run: Run = {}
    for candidate, score in zip(data.candidates, scores, strict=True):
        run.setdefault(candidate.qid, {})[candidate.docid] = score
    return run


def ranked(run: Run) -> list[tuple[str, str, int, float]]:
    """(qid, docid, rank from 1, score) for each query's documents, best score first."""
    rows = []
    for qid, docs in run.items():
        order = sorted(docs.items(), key=lambda item: -item[1])
        rows += [(qid, docid, rank, score) for rank, (docid, score) in enumerate(order, 1)]
    return rows


def trec_run_text(run: Run, tag: str) -> str:
    """The run in TREC format, ``qid Q0 docid rank score tag`` per line, exact enough to re-evaluate."""
    return "".join(f"{qid} Q0 {docid} {rank} {score:.9g} {tag}\n" for qid, docid, rank, score in ranked(run))


def prediction_rows(data: RankingData, run: Run) -> list[dict]:
    """One JSON-ready row per candidate, in ranked order: ids, rank, score, relevance and both texts."""
    texts = {(c.qid, c.docid): c.text for c in data.candidates}
    return [
        {
            "qid": qid,
            "docid": docid,
            "rank": rank,
            "score": round(score, 6),
            "relevance": data.qrels.get(qid, {}).get(docid, 0),
            "query": data.queries[qid],
            "document": texts[(qid, docid)],
        }
        for qid, docid, rank, score in ranked(run)
    ]
