"""Tokenising tagged sentences into sub-word windows, and mapping predictions back to words.

A word's tag goes on its first sub-token; its other sub-tokens, the special tokens and padding get
the label -100, which the loss ignores. A sentence longer than ``max_length`` sub-tokens is split
into windows that overlap by ``stride`` sub-tokens (the tokenizer's overflowing tokens). A word
seen by several windows belongs to the one where it has the most context on both sides: it is
trained and predicted there only, so no word counts twice and none is dropped. A word that the
tokenizer turns into no sub-token at all (a lone control character, say) cannot be predicted: it
gets ``O`` and is counted (``words_without_subwords``); a sentence of such words only gets no
window, and its gold tags still count in the metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from ...errors import AttnguideError, DataError
from .data import TaggedSentences

logger = logging.getLogger("attnguide")

IGNORED = -100


@dataclass
class EncodedWindows:
    """The windows of every sentence, in order, and which word each labelled position stands for.

    ``positions[i]`` maps the positions of window ``i`` that carry a word (its first sub-token, in
    the window that owns the word) to ``(sentence, word)``.
    """

    dataset: Dataset
    positions: list[dict[int, tuple[int, int]]]
    split_sentences: int
    words_without_subwords: int


def encode_windows(
    data: TaggedSentences,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    label2id: dict[str, int] | None = None,
    stride: int = 32,
) -> EncodedWindows:
    """Sub-word windows of every sentence; with ``label2id``, a ``labels`` column as above."""
    if not tokenizer.is_fast:
        raise AttnguideError(
            "token classification needs a fast tokenizer (one that maps sub-tokens to words)"
        )
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if stride >= room:
        raise AttnguideError(
            f"--stride {stride}: must be below --max-length minus the special tokens ({room})"
        )
    encoded = tokenizer(
        data.words,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )
    sentence_of = encoded["overflow_to_sample_mapping"]
    owner: dict[
        tuple[int, int], tuple[int, int, int]
    ] = {}  # (sentence, word) -> (context, -window, position)
    for window, sentence in enumerate(sentence_of):
        ids = encoded.word_ids(window)
        content = [p for p, w in enumerate(ids) if w is not None]
        if not content:  # a sentence whose every word has no sub-token: nothing to train or predict
            continue
        first, last = content[0], content[-1]
        for position, word in enumerate(ids):
            if word is None or (position > 0 and ids[position - 1] == word):
                continue  # not a word's first sub-token in this window
            context = min(position - first, last - position)
            candidate = (context, -window, position)
            key = (sentence, word)
            if key not in owner or candidate > owner[key]:
                owner[key] = candidate
    positions: list[dict[int, tuple[int, int]]] = [{} for _ in sentence_of]
    for (sentence, word), (_, negative_window, position) in owner.items():
        positions[-negative_window][position] = (sentence, word)
    kept = [window for window, where in enumerate(positions) if where]  # windows with a word to tag
    if not kept:
        raise DataError(data.source, "no word of any sentence has a sub-token of this tokenizer")
    positions = [positions[window] for window in kept]
    columns = {
        name: [encoded[name][window] for window in kept]
        for name in encoded
        if name != "overflow_to_sample_mapping"
    }
    if label2id is not None:
        columns["labels"] = []
        for ids, where in zip(columns["input_ids"], positions, strict=True):
            labels = [IGNORED] * len(ids)
            for position, (sentence, word) in where.items():
                labels[position] = label2id[data.tags[sentence][word]]
            columns["labels"].append(labels)
    windows_per_sentence = [0] * len(data)
    for sentence in sentence_of:
        windows_per_sentence[sentence] += 1
    split = sum(count > 1 for count in windows_per_sentence)
    missing = data.word_count - len(owner)
    if split:
        logger.info(
            "%s: %d of %d sentences longer than %d sub-tokens split into overlapping windows",
            data.source,
            split,
            len(data),
            max_length,
        )
    if missing:
        logger.warning("%s: %d words have no sub-token; they are predicted O", data.source, missing)
    return EncodedWindows(Dataset.from_dict(columns), positions, split, missing)


def words_from_windows(
    windows: EncodedWindows, data: TaggedSentences, predicted: list[list[int]], id2label: dict[int, str]
) -> list[list[str]]:
    """Each sentence's predicted tag per word from the predicted label id per window position."""
    tags = [["O"] * len(words) for words in data.words]
    for where, labels in zip(windows.positions, predicted, strict=True):
        for position, (sentence, word) in where.items():
            tags[sentence][word] = id2label[labels[position]]
    return tags
