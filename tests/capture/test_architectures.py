"""Guided training steps on tiny random encoders of every family the project covers."""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny import CONFIGS, batch
from transformers import AutoModelForSequenceClassification

from attnguide import GuideConfig
from attnguide.capture.routes import OutputAttentionsCapture
from attnguide.errors import AttentionCaptureError
from attnguide.guiding.batch_losses import guide_losses, weighted_sum


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_guided_steps(family: str) -> None:
    torch.manual_seed(0)
    config = CONFIGS[family]()
    config.num_labels = 3
    model = AutoModelForSequenceClassification.from_config(config)
    guide = GuideConfig(mdg_weight=1.0, pdg_weight=1.0)
    capture = OutputAttentionsCapture(model, guide)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = batch()
    model.train()
    for _ in range(2):
        outputs = model(**inputs, **capture.forward_kwargs())
        profiles = capture.profiles(outputs, inputs["attention_mask"])
        assert profiles.shape == (4, 2 * 4, 10)
        parts = guide_losses(profiles, inputs["attention_mask"], guide, capture.heads_per_layer)
        assert all(torch.isfinite(v) for v in parts.values()) and torch.isfinite(outputs.loss)
        optimizer.zero_grad()
        weighted_sum(parts, guide, step=1).backward()  # the guiding term alone
        grad = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
        assert grad > 1e-6, f"{family}: no gradient reaches the weights from the guiding term"
        optimizer.step()


def test_model_without_attention_is_refused() -> None:
    config = transformers.FNetConfig(
        hidden_size=32, num_hidden_layers=2, intermediate_size=37, vocab_size=99, num_labels=2
    )
    model = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(AttentionCaptureError, match="attention"):
        OutputAttentionsCapture(model, GuideConfig())
