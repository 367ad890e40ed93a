"""Attention diagnostics on hand-built profiles with known answers, and over a data set on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from attnguide.analysis.diagnostics import (
    _batch_sums,
    attention_share,
    descriptions,
    diagnose,
    head_shares,
    head_similarity,
    is_punctuation,
    max_on,
    mdg_per_head,
    profile_entropy,
    punctuation_mask,
    similarity_matrix,
    special_token_mask,
)
from attnguide.guiding.attention_losses import (
    disagreement_loss,
    map_discrimination_loss,
    pattern_decorrelation_loss,
)
from attnguide.guiding.builtin_guides import MapInputs
from attnguide.guiding.registry import GUIDES


def uniform(heads: int, n: int) -> torch.Tensor:
    return torch.full((1, heads, n), 1.0 / n)


def one_hot(positions: list[int], n: int) -> torch.Tensor:
    """One head per entry, all its attention on that position."""
    profiles = torch.zeros(1, len(positions), n)
    for head, position in enumerate(positions):
        profiles[0, head, position] = 1.0
    return profiles


ALL_VALID = torch.ones(1, 5)
CLS_SEP = torch.tensor([[True, False, False, False, True]])  # [CLS] w w w [SEP]


def test_uniform_attention() -> None:
    profiles = uniform(3, 5)
    assert torch.allclose(profile_entropy(profiles, ALL_VALID), torch.full((1, 3), math.log(5)))
    assert torch.allclose(head_shares(profiles, CLS_SEP), torch.full((1, 3), 0.4))
    assert torch.allclose(attention_share(profiles, CLS_SEP), torch.tensor([0.4]))
    # every position ties for the maximum: the two special ones are 2 of 5
    assert torch.allclose(max_on(profiles, ALL_VALID, CLS_SEP), torch.full((1, 3), 0.4))


def test_all_attention_on_cls() -> None:
    profiles = one_hot([0, 0, 0], 5)
    assert torch.allclose(profile_entropy(profiles, ALL_VALID), torch.zeros(1, 3))
    assert torch.allclose(head_shares(profiles, CLS_SEP), torch.ones(1, 3))
    assert torch.equal(max_on(profiles, ALL_VALID, CLS_SEP), torch.ones(1, 3))
    words = ~CLS_SEP
    assert torch.equal(max_on(profiles, ALL_VALID, words), torch.zeros(1, 3))


def test_identical_heads() -> None:
    profiles = torch.tensor([[[0.5, 0.2, 0.2, 0.1, 0.0]] * 4])
    assert torch.allclose(similarity_matrix(profiles, ALL_VALID), torch.ones(1, 4, 4))
    assert torch.allclose(head_similarity(profiles, ALL_VALID), torch.tensor([1.0]))
    assert torch.allclose(mdg_per_head(profiles, ALL_VALID), torch.full((1, 4), math.log(4)))


def test_orthogonal_heads() -> None:
    profiles = one_hot([0, 1, 2], 5)
    assert torch.allclose(similarity_matrix(profiles, ALL_VALID), torch.eye(3)[None])
    assert torch.allclose(head_similarity(profiles, ALL_VALID), torch.tensor([0.0]))
    tau = 2.0
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert torch.allclose(mdg_per_head(profiles, ALL_VALID, tau), torch.full((1, 3), want))
    assert torch.equal(max_on(profiles, ALL_VALID, CLS_SEP), torch.tensor([[1.0, 0.0, 0.0]]))


def test_per_head_mdg_averages_to_the_loss() -> None:
    profiles = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(0)).softmax(-1)
    mask = torch.ones(3, 7)
    mask[1, 5:] = 0
    assert torch.allclose(
        mdg_per_head(profiles, mask, 0.5).mean(), map_discrimination_loss(profiles, mask, 0.5)
    )


def test_padding_changes_nothing() -> None:
    profiles = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(1)).softmax(-1)
    padded = torch.cat([profiles, torch.zeros(1, 4, 3)], dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    special = torch.tensor([[True, False, False, False, True, False, False, False]])
    plain = _batch_sums(profiles, ALL_VALID, CLS_SEP, ~CLS_SEP, heads_per_layer=2)
    longer = _batch_sums(padded, mask, special, ~special & (mask > 0), heads_per_layer=2)
    for key, value in plain.items():
        assert torch.allclose(value, longer[key], atol=1e-6), key


def test_batch_sums_per_layer_and_per_model() -> None:
    # layer 0: two identical heads on [CLS]; layer 1: two heads on different words
    profiles = torch.cat([one_hot([0, 0], 5), one_hot([1, 2], 5)], dim=1)
    sums = _batch_sums(profiles, ALL_VALID, CLS_SEP, torch.zeros_like(CLS_SEP), heads_per_layer=2)
    assert torch.allclose(sums["layer:head_similarity"], torch.tensor([1.0, 0.0]))
    assert torch.allclose(sums["layer:mdg_loss"][0], torch.tensor(math.log(2)))
    assert torch.allclose(
        sums["layer:pdg_loss"],
        torch.stack([pattern_decorrelation_loss(p) for p in (profiles[:, :2], profiles[:, 2:])]),
    )
    assert torch.allclose(sums["model:pdg_loss"], pattern_decorrelation_loss(profiles))
    assert torch.allclose(sums["head:max_on_special"], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(sums["head:effective_positions"], torch.ones(4))
    # head 0 matches head 1 and neither of the others: mean similarity to the other three is 1/3
    assert torch.allclose(sums["head:head_similarity"], torch.tensor([1 / 3, 1 / 3, 0.0, 0.0]))
    assert "layer:pattern_loss" not in sums  # no maps given: the map guides are left out


def test_batch_sums_measure_the_map_guides_per_layer_and_jointly() -> None:
    generator = torch.Generator().manual_seed(2)
    maps = [torch.rand(2, 2, 5, 5, generator=generator).softmax(-1) for _ in range(2)]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    profiles = torch.cat([m.mean(2) for m in maps], dim=1) * mask[:, None, :]
    ids = torch.tensor([[101, 7, 1012, 102, 9], [101, 8, 102, 0, 0]])
    tokens = {"pattern": type("Tokens", (), {"delimiters": [102], "periods": [1012]})()}
    sums = _batch_sums(profiles, mask, mask.bool(), mask.bool(), 2, maps=MapInputs(maps, ids), tokens=tokens)
    per_layer = torch.stack([disagreement_loss(m, mask) for m in maps]) * 2
    assert torch.allclose(sums["layer:disagreement_loss"], per_layer)
    assert torch.allclose(sums["model:disagreement_loss"], per_layer.mean())
    assert sums["layer:pattern_loss"].shape == (2,) and sums["model:pattern_loss"] > 0


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (".", True),
        ("##?", True),
        ("Ġ,", True),
        ("▁!", True),
        ("...", True),
        ("word", False),
        ("Ġ", False),
        ("", False),
        ("a.", False),
    ],
)
def test_is_punctuation(token: str, expected: bool) -> None:
    assert is_punctuation(token) is expected


def test_token_masks_come_from_the_tokenizer(minilm_path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    ids = torch.tensor([tokenizer("A man, smiling.", "Who?")["input_ids"]])
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    special = [t for t, s in zip(tokens, special_token_mask(ids, tokenizer)[0], strict=True) if s]
    punctuation = [t for t, p in zip(tokens, punctuation_mask(ids, tokenizer)[0], strict=True) if p]
    assert special == ["[CLS]", "[SEP]", "[SEP]"]
    assert punctuation == [",", ".", "?"]


def test_diagnose_agrees_with_evaluate(tiny_model_dir) -> None:
    from attnguide.experiments.offline_demo import make_dataset
    from attnguide.models import load_model, load_tokenizer
    from attnguide.tasks.classification.run import evaluate
    from attnguide.tasks.pairs.data import PairData
    from attnguide.tasks.pairs.encoding import encode_pairs

    rows = make_dataset(10, seed=4)
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, attn_implementation="eager")
    data = PairData(
        [r["sentence1"] for r in rows],
        [r["sentence2"] for r in rows],
        [r["gold_label"] for r in rows],
        "mem",
        "x",
        None,
    )
    dataset = encode_pairs(data, tokenizer, 48)
    got = diagnose(model, tokenizer, dataset, batch_size=4)
    want = evaluate(model, tokenizer, dataset, batch_size=3).metrics
    assert (got.layers, got.heads, got.examples) == (2, 4, 10)
    assert list(got.summary) == list(descriptions())
    assert [name for name in got.summary if name.endswith("_loss")] == [f"{g}_loss" for g in GUIDES]
    assert got.summary["pattern_loss"] > 0 and len(got.per_layer["pattern_loss"]) == 2
    for name in ("head_similarity", "special_token_share", "mdg_loss", "pdg_loss", "disagreement_loss"):
        assert got.summary[name] == pytest.approx(want[name], rel=1e-5), name
    assert all(len(v) == 8 for v in got.per_head.values())
    assert all(len(v) == 2 for v in got.per_layer.values())
    assert got.summary["entropy"] == pytest.approx(sum(got.per_head["entropy"]) / 8)
    assert len(got.similarity) == 8 and got.similarity[3][3] == pytest.approx(1.0)
