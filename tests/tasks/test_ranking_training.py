"""The pieces of ranking training: pair encoding and truncation, listwise groups, the two losses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from attnguide.tasks.ranking.data import Candidate, RankingData, read_ranking
from attnguide.tasks.ranking.encoding import encode_candidates
from attnguide.tasks.ranking.listwise_groups import ListwiseCollator, ListwiseGroups
from attnguide.tasks.ranking.ranking_losses import listwise_loss, pointwise_loss

FIXTURES = Path(__file__).parent / "fixtures" / "ranking"


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


def one_query(query: str, documents: list[str], relevance: list[int]) -> RankingData:
    candidates = [Candidate("q", f"d{i}", text) for i, text in enumerate(documents)]
    qrels = {"q": {c.docid: r for c, r in zip(candidates, relevance, strict=True)}}
    return RankingData({"q": query}, candidates, qrels, "memory", "test", ())


def test_long_documents_are_cut_and_the_query_kept_whole(tokenizer) -> None:
    query = "who wrote the play hamlet"  # 5 tokens
    data = one_query(query, ["short answer .", "word " * 100], [1, 0])
    encoded = encode_candidates(data, tokenizer, max_length=16, with_labels=True)
    assert (encoded.truncated, encoded.query_cut) == (1, 0)
    long_pair = encoded.dataset[1]["input_ids"]
    assert len(long_pair) == 16
    assert tokenizer.decode(long_pair[1:6]) == query  # [CLS] + the whole query
    assert encoded.dataset["labels"] == [1.0, 0.0]
    assert len(encoded.dataset[0]["input_ids"]) < 16  # the short pair is left alone


def test_a_query_too_long_for_any_document_is_cut_too(tokenizer) -> None:
    data = one_query("why " * 30, ["a document ."], [1])
    encoded = encode_candidates(data, tokenizer, max_length=16)
    assert (encoded.truncated, encoded.query_cut) == (1, 1)
    ids = encoded.dataset[0]["input_ids"]
    assert len(ids) == 16 and ids.count(tokenizer.sep_token_id) == 2  # both texts still present


def test_listwise_groups_hold_one_relevant_and_k_irrelevant_documents_of_its_query(tokenizer) -> None:
    data = read_ranking(
        FIXTURES / "cross_genre_ir.csv"
    )  # claim 1: 2 relevant, 1 irrelevant; claim 2: 1 and 1
    encoded = encode_candidates(data, tokenizer, max_length=64).dataset
    groups = ListwiseGroups(encoded, data, negatives=2, seed=5)
    assert len(groups) == 3 and groups.skipped == 0  # claim 3 has no relevant document: no group
    for index, (positive, pool) in enumerate(groups.groups):
        item = groups[index]["pairs"]
        assert len(item) == 3 and item[0] == groups.rows[positive]
        assert data.relevance(data.candidates[positive]) > 0
        qid = data.candidates[positive].qid
        assert all(data.candidates[j].qid == qid and data.relevance(data.candidates[j]) == 0 for j in pool)
        assert all(pair in [groups.rows[j] for j in pool] for pair in item[1:])
    batch = ListwiseCollator(tokenizer)([groups[0], groups[1]])
    assert batch["input_ids"].shape[0] == 6
    assert batch["labels"].tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


def test_listwise_negatives_are_redrawn_each_epoch_and_reproducible(tokenizer, shared_data) -> None:
    data = read_ranking(shared_data / "trecqa" / "dev.csv")
    encoded = encode_candidates(data, tokenizer, max_length=32).dataset
    first, again = (ListwiseGroups(encoded, data, negatives=3, seed=1) for _ in range(2))
    big = max(range(len(first)), key=lambda i: len(first.groups[i][1]))  # the largest pool of negatives

    def draws(groups: ListwiseGroups, epochs: list[int]) -> list:
        out = []
        for epoch in epochs:
            groups.set_epoch(epoch)
            out.append(groups[big]["pairs"][1:])
        return out

    by_epoch = draws(first, [0, 1, 2])
    assert by_epoch[0] != by_epoch[1] or by_epoch[1] != by_epoch[2]
    assert draws(first, [2]) == by_epoch[2:]  # a second read in the same epoch: the same draw
    assert draws(again, [2, 0, 1]) == [by_epoch[2], by_epoch[0], by_epoch[1]]  # any order, as on resume


def test_pointwise_loss_is_binary_cross_entropy_on_the_logit() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([1.0, 0.0, 0.0])
    expected = -(
        F.logsigmoid(torch.tensor(2.0)) + F.logsigmoid(torch.tensor(1.0)) + F.logsigmoid(torch.tensor(-0.5))
    )
    assert pointwise_loss(SimpleNamespace(logits=logits), labels).item() == pytest.approx(expected.item() / 3)


def test_listwise_loss_is_minus_log_softmax_of_the_relevant_score() -> None:
    logits = torch.tensor([[3.0], [1.0], [0.0], [0.0], [2.0], [0.0]])  # two groups of 1 + 2
    labels = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    first = 3 - torch.logsumexp(torch.tensor([3.0, 1.0, 0.0]), 0)
    second = 0 - torch.logsumexp(torch.tensor([0.0, 2.0, 0.0]), 0)
    expected = -(first + second) / 2
    assert listwise_loss(SimpleNamespace(logits=logits), labels).item() == pytest.approx(expected.item())
