"""The released code's defect (docs/METHOD.md), measured on the packaged MiniLM-L6 in eval mode."""

from __future__ import annotations

import pytest
import torch

from attnguide.capture.routes import use_eager_attention
from attnguide.guiding.attention_losses import map_discrimination_loss, pattern_decorrelation_loss
from attnguide.guiding.profiles import attention_profiles
from attnguide.models import load_model, load_tokenizer


def guiding_gradient_norm(model, batch, kind: str) -> float:
    model.zero_grad()
    outputs = model(**batch, output_attentions=True)
    profiles = attention_profiles(outputs.attentions, batch["attention_mask"], kind=kind)
    loss = map_discrimination_loss(profiles, batch["attention_mask"]) + pattern_decorrelation_loss(
        profiles, batch["attention_mask"]
    )
    loss.backward()
    return torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)).item()


@pytest.mark.filterwarnings("ignore:profile kind 'released-code'")
def test_received_profile_carries_signal_released_code_does_not(minilm_path) -> None:
    torch.manual_seed(0)
    tokenizer = load_tokenizer(minilm_path)
    model = load_model(minilm_path, ["a", "b", "c"])
    use_eager_attention(model)
    model.eval()
    premises = [
        f"A person number {i} is walking a dog in the park near the old river bank today." for i in range(16)
    ]
    hypotheses = [
        f"Someone is outside with an animal and it is day {i} of a long and sunny summer." for i in range(16)
    ]
    batch = tokenizer(
        premises, hypotheses, padding="max_length", max_length=64, truncation=True, return_tensors="pt"
    )
    received = guiding_gradient_norm(model, batch, "received")
    released = guiding_gradient_norm(model, batch, "released-code")
    assert received > 1.0
    assert released < 1e-6
