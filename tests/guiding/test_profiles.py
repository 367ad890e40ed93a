"""Attention profiles from output_attentions tensors, and the released code's signal-free variant."""

from __future__ import annotations

import warnings

import pytest
import torch

import attnguide.guiding.profiles as profiles_module
from attnguide.guiding.profiles import attention_profiles


def softmax_maps(batch: int, heads: int, n: int, mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    scores = torch.randn(batch, heads, n, n, generator=torch.Generator().manual_seed(seed))
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    return scores.softmax(-1)


def test_received_profile_is_mean_over_valid_queries() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    maps = softmax_maps(2, 3, 5, mask)
    got = attention_profiles((maps,), mask)
    assert got.shape == (2, 3, 5)
    want_b1 = maps[1, :, :3, :].mean(1)  # only the three real queries of sequence 1
    assert torch.allclose(got[1], want_b1, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(2, 3), atol=1e-6)
    assert (got[1, :, 3:] == 0).all()


def test_layers_are_stacked_in_order() -> None:
    mask = torch.ones(1, 4)
    maps = [softmax_maps(1, 2, 4, mask, seed=s) for s in range(3)]
    got = attention_profiles(maps, mask, layers=[2, 0])
    assert torch.allclose(got[:, :2], attention_profiles([maps[2]], mask))
    assert torch.allclose(got[:, 2:], attention_profiles([maps[0]], mask))
    assert torch.allclose(attention_profiles(maps, mask, layers=[-1]), attention_profiles([maps[2]], mask))


def test_released_code_profile_is_constant_and_warns_once(monkeypatch) -> None:
    monkeypatch.setattr(profiles_module, "_released_code_warned", False)
    mask = torch.ones(2, 6)
    maps = softmax_maps(2, 4, 6, mask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = attention_profiles((maps,), mask, kind="released-code")
        attention_profiles((maps,), mask, kind="released-code")
    assert torch.allclose(first, torch.full_like(first, 1 / 6))
    assert len([w for w in caught if "no guiding signal" in str(w.message)]) == 1


def test_unknown_kind_and_empty_attentions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile kind"):
        attention_profiles((torch.rand(1, 1, 2, 2),), torch.ones(1, 2), kind="keys")
    with pytest.raises(ValueError, match="no attention maps"):
        attention_profiles((), torch.ones(1, 2))
