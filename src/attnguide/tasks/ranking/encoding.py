"""Tokenising (query, document) pairs for a cross-encoder, the query kept whole where it fits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from .data import RankingData

logger = logging.getLogger("attnguide")


@dataclass
class EncodedPairs:
    """Token ids of every candidate pair, in ``RankingData.candidates`` order, and truncation counts."""

    dataset: Dataset
    truncated: int
    query_cut: int


def encode_candidates(
    data: RankingData, tokenizer: PreTrainedTokenizerBase, max_length: int, with_labels: bool = False
) -> EncodedPairs:
    """``[CLS] query [SEP] document [SEP]`` for each candidate, at most ``max_length`` tokens.

    Over-long pairs lose the end of the document (truncation ``only_second``); only a query too
    long to leave room for one document token is itself cut (``longest_first``). With
    ``with_labels``, a ``labels`` column holds 1.0 for relevant candidates and 0.0 for the rest.
    """
    queries = [data.queries[c.qid] for c in data.candidates]
    documents = [c.text for c in data.candidates]
    full = tokenizer(queries, documents, truncation=False, verbose=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    query_tokens = {
        qid: len(ids)
        for qid, ids in zip(
            data.queries,
            tokenizer(list(data.queries.values()), add_special_tokens=False)["input_ids"],
            strict=True,
        )
    }
    long_query = [query_tokens[c.qid] >= room for c in data.candidates]
    columns: dict[str, list] = {}
    for strategy, chosen in (("only_second", False), ("longest_first", True)):
        rows = [i for i, flag in enumerate(long_query) if flag == chosen]
        if not rows:
            continue
        encoded = tokenizer(
            [queries[i] for i in rows],
            [documents[i] for i in rows],
            truncation=strategy,
            max_length=max_length,
        )
        for name, values in encoded.items():
            column = columns.setdefault(name, [None] * len(queries))
            for i, value in zip(rows, values, strict=True):
                column[i] = value
    if with_labels:
        columns["labels"] = [float(data.relevance(c) > 0) for c in data.candidates]
    query_cut = sum(long_query[i] and len(full[i]) > max_length for i in range(len(full)))
    if truncated:
        logger.info(
            "%s: %d of %d pairs truncated to %d tokens (documents shortened; %d pairs had the query cut too)",
            data.source,
            truncated,
            len(full),
            max_length,
            query_cut,
        )
    return EncodedPairs(Dataset.from_dict(columns), truncated, query_cut)
