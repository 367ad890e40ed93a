"""MPNet on SDPA (``models.use_mpnet_sdpa``) and on the efficient capture, against transformers'
eager MPNet: hidden states, guided losses and gradients, with padding in the batch."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from tiny import CONFIGS, batch
from transformers import AutoModelForSequenceClassification, MPNetForSequenceClassification
from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

from attnguide import GuideConfig
from attnguide.capture import attention_function
from attnguide.capture.received_profiles import query_weights, received_attention
from attnguide.capture.routes import OutputAttentionsCapture, make_capture
from attnguide.capture.sdpa_profiles import portable_route
from attnguide.guiding.batch_losses import guide_losses, weighted_sum
from attnguide.models import MPNetSdpaSelfAttention, load_model, use_mpnet_sdpa

BIAS = "mpnet.encoder.relative_attention_bias.weight"


def tiny_mpnet(**overrides) -> MPNetForSequenceClassification:
    torch.manual_seed(0)
    config = CONFIGS["mpnet"]()
    config.num_labels = 3
    for name, value in overrides.items():
        setattr(config, name, value)
    return AutoModelForSequenceClassification.from_config(config).eval()


def gradients(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in model.parameters()]
    )


def test_sdpa_matches_eager_hidden_states_and_task_gradients() -> None:
    eager = tiny_mpnet()
    sdpa = copy.deepcopy(eager)
    assert len(use_mpnet_sdpa(sdpa)) == 2
    inputs = batch()  # two of the four sequences are padded
    results = []
    for model in (eager, sdpa):
        outputs = model(**inputs, output_hidden_states=True)
        outputs.loss.backward()
        results.append((outputs.hidden_states[-1].detach(), gradients(model)))
    (eager_states, eager_grads), (states, grads) = results
    assert torch.allclose(states, eager_states, rtol=0, atol=1e-5)
    assert sdpa.get_parameter(BIAS).grad.norm() > 1e-6  # the position bias learns through the mask
    assert (grads - eager_grads).norm() <= 1e-5 * eager_grads.norm()


def test_sdpa_gets_the_bias_and_the_models_dropout(monkeypatch) -> None:
    model = tiny_mpnet(attention_probs_dropout_prob=0.25)
    use_mpnet_sdpa(model)
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, dropout_p=0.0, **kwargs):
        calls.append((attn_mask, dropout_p))
        return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    inputs = batch()
    model(**inputs)
    model.train()
    model(**inputs)
    assert [p for _, p in calls] == [0.0, 0.0, 0.25, 0.25]
    mask = calls[0][0]
    assert mask.shape == (4, 4, 10, 10) and all(m is mask for m, _ in calls[:2])  # made once per call
    assert torch.all(mask[1, :, :, 7:] < -1e30) and torch.all(mask[3, :, :, 4:] < -1e30)
    assert mask[0, 0, 0, 1] != mask[0, 0, 0, 2]  # relative positions, not only padding


def test_output_attentions_still_gives_eager_maps() -> None:
    eager = tiny_mpnet()
    sdpa = copy.deepcopy(eager)
    use_mpnet_sdpa(sdpa)
    maps = sdpa(**batch(), output_attentions=True).attentions
    assert len(maps) == 2
    for got, expected in zip(maps, eager(**batch(), output_attentions=True).attentions, strict=True):
        assert torch.allclose(got, expected, atol=1e-6)


def guided_step(model, capture, inputs, guide: GuideConfig) -> tuple[torch.Tensor, dict, torch.Tensor]:
    mask = inputs["attention_mask"]
    model.zero_grad()
    outputs = model(**inputs, **capture.forward_kwargs(mask))
    profiles = capture.profiles(outputs, mask)
    parts = guide_losses(profiles, mask, guide, capture.heads_per_layer)
    weighted_sum(parts, guide, step=1).backward()
    return profiles.detach(), {name: float(value.detach()) for name, value in parts.items()}, gradients(model)


@pytest.mark.parametrize("portable", [False, True], ids=["cpu", "portable"])
@pytest.mark.parametrize("frozen_bias", [False, True], ids=["learned-bias", "frozen-bias"])
@pytest.mark.parametrize("layers", ["all", "last:1"])
def test_efficient_route_matches_output_attentions(portable: bool, frozen_bias: bool, layers: str) -> None:
    """Every branch of the efficient route: a learned bias takes the math kernel on the CPU and SDPA
    beside ``received_attention`` elsewhere (``portable``); a frozen one the fused kernels."""
    guide = GuideConfig(mdg_weight=1.0, pdg_weight=1.0, layers=layers, scope="per-layer")
    model = tiny_mpnet()
    model.get_parameter(BIAS).requires_grad_(not frozen_bias)
    reference = copy.deepcopy(model)
    inputs = batch()
    capture = make_capture(model, guide)
    assert capture.route == "efficient"
    with portable_route(portable):
        profiles, losses, grads = guided_step(model, capture, inputs, guide)
    eager_profiles, eager_losses, eager_grads = guided_step(
        reference, OutputAttentionsCapture(reference, guide), inputs, guide
    )
    assert profiles.shape == eager_profiles.shape == (4, 4 * (2 if layers == "all" else 1), 10)
    assert torch.allclose(profiles, eager_profiles, rtol=0, atol=1e-5)
    assert torch.all(profiles[1, :, 7:] == 0) and torch.all(profiles[3, :, 4:] == 0)
    assert losses.keys() == eager_losses.keys()
    assert all(losses[name] == pytest.approx(eager_losses[name], rel=1e-5) for name in losses)
    assert eager_grads.norm() > 1e-3
    assert (grads - eager_grads).norm() <= 1e-4 * eager_grads.norm()
    if not frozen_bias:
        bias_grad, eager_bias_grad = model.get_parameter(BIAS).grad, reference.get_parameter(BIAS).grad
        assert eager_bias_grad.norm() > 1e-4
        assert (bias_grad - eager_bias_grad).norm() <= 1e-4 * eager_bias_grad.norm()


def test_guided_training_mode_with_dropout_takes_the_math_kernel(monkeypatch) -> None:
    calls = []
    original = attention_function.math_attention_with_profile
    monkeypatch.setattr(
        attention_function,
        "math_attention_with_profile",
        lambda *args: calls.append(args[-1]) or original(*args),
    )
    model = tiny_mpnet(attention_probs_dropout_prob=0.3)
    capture = make_capture(model, GuideConfig())
    model.train()
    outputs = model(**batch(), **capture.forward_kwargs(batch()["attention_mask"]))
    assert capture.profiles(outputs, batch()["attention_mask"]).shape == (4, 8, 10)
    assert calls == [0.3, 0.3]


def test_received_attention_gives_the_gradient_of_a_learned_mask() -> None:
    g = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 3, 7, 4, generator=g), torch.randn(2, 3, 7, 4, generator=g)
    valid = torch.ones(2, 7, dtype=torch.long)
    valid[1, 5:] = 0
    padding = (1 - valid[:, None, None, :].float()) * torch.finfo(torch.float32).min
    position = torch.randn(1, 3, 7, 7, generator=g, requires_grad=True)
    weights, upstream = query_weights(valid), torch.randn(2, 3, 7, generator=g)
    dense = torch.softmax(query @ key.transpose(-1, -2) / 2 + position + padding, -1)
    (expected,) = torch.autograd.grad(
        (torch.einsum("bhqk,bq->bhk", dense, weights) * upstream).sum(), position
    )
    for chunk in (1, 40, 10_000):
        profile = received_attention(query, key, position + padding, weights, chunk_elements=chunk)
        (got,) = torch.autograd.grad((profile * upstream).sum(), position)
        assert expected.norm() > 1e-3
        assert torch.allclose(got, expected, atol=1e-6)


def test_routes_and_their_log(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="attnguide"):
        assert make_capture(tiny_mpnet(), GuideConfig()).route == "efficient"
    assert "efficient route" in caplog.text
    model = tiny_mpnet()
    assert make_capture(model, GuideConfig(capture="output-attentions")).route == "output-attentions"
    assert make_capture(tiny_mpnet(), GuideConfig(profile="released-code")).route == "output-attentions"


def test_load_model_puts_mpnet_on_sdpa_unless_eager_is_asked(tmp_path) -> None:
    tiny_mpnet().save_pretrained(tmp_path)
    kinds = {type(m) for m in load_model(str(tmp_path)).modules() if isinstance(m, MPNetSelfAttention)}
    assert kinds == {MPNetSdpaSelfAttention}
    eager = load_model(str(tmp_path), attn_implementation="eager")
    assert {type(m) for m in eager.modules() if isinstance(m, MPNetSelfAttention)} == {MPNetSelfAttention}
