"""MDG and PDG against a float64 reference written from the formulas of docs/METHOD.md."""

from __future__ import annotations

import math

import pytest
import torch

from attnguide.guiding.attention_losses import map_discrimination_loss, pattern_decorrelation_loss
from attnguide.guiding.batch_losses import guide_losses
from attnguide.guiding.config import GuideConfig


def reference(profiles: torch.Tensor, mask: torch.Tensor, tau: float) -> tuple[float, float]:
    """docs/METHOD.md, sequence by sequence: restrict to valid columns, normalise rows, build S_b and C_b."""
    mdg, pdg = [], []
    for a, m in zip(profiles.double(), mask.bool(), strict=True):
        a = a[:, m]
        unit = a / torch.sqrt((a * a).sum(-1, keepdim=True) + 1e-12)
        s = unit @ unit.T / tau
        mdg.append(-torch.log_softmax(s, -1).diagonal())
        c = unit.T @ unit
        n_b = int(m.sum())
        pdg.append(((c - torch.eye(n_b, dtype=torch.float64)) ** 2).sum() / n_b)
    return torch.cat(mdg).mean().item(), torch.stack(pdg).mean().item()


def random_profiles(batch: int, heads: int, positions: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, positions)
    for b in range(batch):
        mask[b, int(torch.randint(2, positions + 1, (1,), generator=g)) :] = 0
    profiles = torch.rand(batch, heads, positions, generator=g) * mask[:, None, :]
    return profiles / profiles.sum(-1, keepdim=True), mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("padded", [False, True])
def test_losses_match_reference(seed: int, padded: bool) -> None:
    profiles, mask = random_profiles(4, 12, 9, seed)
    if not padded:
        mask = torch.ones_like(mask)
        profiles = torch.rand(profiles.shape, generator=torch.Generator().manual_seed(seed))
    want_mdg, want_pdg = reference(profiles, mask, tau=2.0)
    assert map_discrimination_loss(profiles, mask, 2.0).item() == pytest.approx(want_mdg, rel=1e-5)
    assert pattern_decorrelation_loss(profiles, mask).item() == pytest.approx(want_pdg, rel=1e-5)
    want_mdg_t, _ = reference(profiles, mask, tau=0.5)
    assert map_discrimination_loss(profiles, mask, 0.5).item() == pytest.approx(want_mdg_t, rel=1e-5)


def test_appending_padding_changes_nothing() -> None:
    profiles, mask = random_profiles(3, 8, 7, seed=5)
    padded = torch.cat([profiles, torch.rand(3, 8, 4)], dim=-1)  # garbage on the new padding positions
    padded_mask = torch.cat([mask, torch.zeros(3, 4)], dim=-1)
    assert map_discrimination_loss(padded, padded_mask).item() == pytest.approx(
        map_discrimination_loss(profiles, mask).item(), rel=1e-6
    )
    assert pattern_decorrelation_loss(padded, padded_mask).item() == pytest.approx(
        pattern_decorrelation_loss(profiles, mask).item(), rel=1e-6
    )


def test_mdg_is_log_n_for_identical_heads() -> None:
    row = torch.rand(1, 1, 10)
    profiles = row.expand(2, 24, 10)
    assert map_discrimination_loss(profiles).item() == pytest.approx(math.log(24), rel=1e-6)


def test_orthogonal_heads_lower_mdg_and_zero_pdg() -> None:
    profiles = torch.eye(6)[None]  # six heads, each on its own position: C = identity
    assert map_discrimination_loss(profiles).item() < math.log(6) - 0.1
    assert pattern_decorrelation_loss(profiles).item() == pytest.approx(0.0, abs=1e-6)


def test_float32_under_half_precision_inputs() -> None:
    profiles, mask = random_profiles(2, 6, 8, seed=3)
    for loss in (
        map_discrimination_loss(profiles.bfloat16(), mask),
        pattern_decorrelation_loss(profiles.half(), mask),
    ):
        assert loss.dtype == torch.float32


def test_per_layer_scope_is_mean_of_layer_problems() -> None:
    profiles, mask = random_profiles(2, 3 * 4, 7, seed=9)
    config = GuideConfig(scope="per-layer", temperature=1.5)
    got = guide_losses(profiles, mask, config, heads_per_layer=4)
    layers = profiles.reshape(2, 3, 4, 7)
    want_mdg = sum(map_discrimination_loss(layers[:, i], mask, 1.5) for i in range(3)) / 3
    want_pdg = sum(pattern_decorrelation_loss(layers[:, i], mask) for i in range(3)) / 3
    assert got["mdg"].item() == pytest.approx(want_mdg.item(), rel=1e-6)
    assert got["pdg"].item() == pytest.approx(want_pdg.item(), rel=1e-6)


def test_bad_shapes_and_temperature_are_refused() -> None:
    with pytest.raises(ValueError, match="batch, heads, positions"):
        map_discrimination_loss(torch.rand(3, 4))
    with pytest.raises(ValueError, match="mask"):
        pattern_decorrelation_loss(torch.rand(2, 3, 4), torch.ones(2, 5))
    with pytest.raises(ValueError, match="temperature"):
        map_discrimination_loss(torch.rand(2, 3, 4), temperature=0)
