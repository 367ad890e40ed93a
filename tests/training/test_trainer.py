"""GuidedTrainer against the plain Trainer: identity at weight 0, logged parts, accumulation."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_bert, train
from transformers import Trainer

from attnguide import GuideConfig, GuidedTrainer
from attnguide.errors import AttentionCaptureError


@pytest.mark.parametrize("guide", [GuideConfig(mdg_weight=0, pdg_weight=0), GuideConfig(guides="none"), None])
def test_inactive_guiding_is_the_plain_trainer(tmp_path, guide) -> None:
    _, plain = train(tmp_path, Trainer, tiny_bert())
    trainer, guided = train(tmp_path, GuidedTrainer, tiny_bert(), guide_config=guide)
    assert torch.equal(plain, guided)
    assert trainer.capture is None and trainer.model.config._attn_implementation != "eager"


def test_guiding_changes_training_and_logs_each_part(tmp_path) -> None:
    _, plain = train(tmp_path, Trainer, tiny_bert())
    trainer, guided = train(
        tmp_path, GuidedTrainer, tiny_bert(), guide_config=GuideConfig(mdg_weight=1, pdg_weight=1)
    )
    assert not torch.allclose(plain, guided)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert {"task_loss", "mdg_loss", "pdg_loss"} <= set(entry)
        assert entry["loss"] == pytest.approx(
            entry["task_loss"] + entry["mdg_loss"] + entry["pdg_loss"], rel=1e-3
        )


@pytest.mark.parametrize("guide", [GuideConfig(mdg_weight=1, pdg_weight=1), GuideConfig(guides="none")])
def test_gradient_accumulation_averages_guiding_like_one_batch(tmp_path, guide) -> None:
    _, one_batch = train(tmp_path, GuidedTrainer, tiny_bert(dropout=0.0), batch_size=4, guide_config=guide)
    _, accumulated = train(
        tmp_path, GuidedTrainer, tiny_bert(dropout=0.0), batch_size=2, accumulation=2, guide_config=guide
    )
    assert torch.allclose(one_batch, accumulated, atol=1e-5)


def test_a_map_guide_at_weight_zero_is_left_out(tmp_path) -> None:
    guide = GuideConfig(guides="mdg+pdg+disagreement", disagreement_weight=0)
    trainer, _ = train(tmp_path, GuidedTrainer, tiny_bert(), guide_config=guide)
    assert trainer.capture.route == "efficient"  # no maps captured for a guide that adds nothing
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all({"mdg_loss", "pdg_loss"} <= set(e) and "disagreement_loss" not in e for e in logs)


@pytest.mark.parametrize("layers", ["all", "last:1"])
def test_activation_checkpointing_trains_exactly_as_without(tmp_path, layers) -> None:
    """The efficient route's recomputed layers take the route of their first pass."""
    guide = GuideConfig(mdg_weight=1, pdg_weight=1, layers=layers)
    _, plain = train(tmp_path, GuidedTrainer, tiny_bert(), guide_config=GuideConfig(guides="none"))
    trainer, guided = train(tmp_path, GuidedTrainer, tiny_bert(), guide_config=guide)
    checkpointed_trainer, checkpointed = train(
        tmp_path, GuidedTrainer, tiny_bert(), reentrant=False, guide_config=guide
    )
    assert checkpointed_trainer.capture.route == trainer.capture.route == "efficient"
    assert checkpointed_trainer.model.is_gradient_checkpointing
    assert torch.equal(guided, checkpointed) and not torch.allclose(guided, plain)


@pytest.mark.parametrize("capture", ["efficient", "output-attentions"])
def test_reentrant_checkpointing_is_refused_not_trained_without_guiding(tmp_path, capture) -> None:
    guide = GuideConfig(capture=capture)
    with pytest.raises(AttentionCaptureError, match="use_reentrant=False"):
        train(tmp_path, GuidedTrainer, tiny_bert(), reentrant=True, guide_config=guide)


def test_warmup_ramp_starts_from_zero(tmp_path, caplog) -> None:
    _, plain = train(tmp_path, Trainer, tiny_bert(dropout=0.0))
    _, ramped = train(
        tmp_path,
        GuidedTrainer,
        tiny_bert(dropout=0.0),
        guide_config=GuideConfig(mdg_weight=1, pdg_weight=1, warmup_steps=1000),
    )
    _, full = train(
        tmp_path, GuidedTrainer, tiny_bert(dropout=0.0), guide_config=GuideConfig(mdg_weight=1, pdg_weight=1)
    )
    assert (ramped - plain).abs().max() < (full - plain).abs().max()
    warned = [r.getMessage() for r in caplog.records if "guide warm-up" in r.getMessage()]
    assert len(warned) == 1 and "longer than this run" in warned[0]  # the ramped run's, not the full one's
