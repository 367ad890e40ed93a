"""GuidedTrainer against the plain Trainer: identity at weight 0, logged parts, accumulation."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from attnguide import GuideConfig, GuidedTrainer
from attnguide.errors import AttentionCaptureError


def tiny_bert(dropout: float = 0.1) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=99,
        num_labels=2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForSequenceClassification(config)


def toy_data(size: int = 16, length: int = 10) -> Dataset:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (size, length), generator=g).tolist()
    mask = [[1] * length if i % 3 else [1] * (length - 3) + [0] * 3 for i in range(size)]
    return Dataset.from_dict(
        {"input_ids": ids, "attention_mask": mask, "labels": [i % 2 for i in range(size)]}
    )


def train(tmp_path, trainer_class, model, batch_size=4, accumulation=1, optim=None, reentrant=None, **kwargs):
    """Train 4 steps; ``reentrant`` True or False: with activation checkpointing of that kind."""
    extra = {} if optim is None else {"optim": optim}
    if reentrant is not None:
        extra.update(
            activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": reentrant}
        )
    args = TrainingArguments(
        **extra,
        output_dir=str(tmp_path),
        report_to="none",
        max_steps=4,
        seed=0,
        save_strategy="no",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        logging_steps=2,
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    trainer = trainer_class(model=model, args=args, train_dataset=toy_data(), **kwargs)
    trainer.train()
    return trainer, torch.cat([p.detach().flatten() for p in model.parameters()])


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


def test_warmup_ramp_starts_from_zero(tmp_path) -> None:
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
