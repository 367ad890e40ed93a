"""Tokenising sentence pairs into a ``datasets.Dataset`` the Trainer can batch."""

from __future__ import annotations

import logging

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from .data import PairData

logger = logging.getLogger("attnguide")


def encode_pairs(
    data: PairData,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    label2id: dict[str, int] | None = None,
) -> Dataset:
    """Token ids (truncated to ``max_length``, the longer text first) and, with ``label2id``, label ids.

    Over-long pairs are truncated, not refused; their number is logged.
    """
    texts = (data.text_a,) if data.text_b is None else (data.text_a, data.text_b)
    lengths = [len(ids) for ids in tokenizer(*texts, truncation=False, verbose=False)["input_ids"]]
    truncated = sum(length > max_length for length in lengths)
    if truncated:
        logger.info(
            "%s: %d of %d examples truncated to %d tokens", data.source, truncated, len(data), max_length
        )
    columns = dict(tokenizer(*texts, truncation=True, max_length=max_length))
    if label2id is not None:
        unknown = next((i for i, label in enumerate(data.labels) if label not in label2id), None)
        if unknown is not None:
            known = ", ".join(label2id)
            raise data.error(
                unknown, f"label {data.labels[unknown]!r} is not one the model knows (known: {known})"
            )
        columns["labels"] = [label2id[label] for label in data.labels]
    return Dataset.from_dict(columns)
