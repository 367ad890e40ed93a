"""The efficient capture against eager attention maps: profiles, gradients, routes, training."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
import transformers
from tiny import CONFIGS, batch, tiny_bert, train
from transformers import AutoModelForSequenceClassification

from attnguide import GuideConfig, GuidedTrainer
from attnguide.capture import attention_function, received_profiles, score_blocks, sdpa_profiles
from attnguide.capture.attention_function import ATTENTION_NAME
from attnguide.capture.received_profiles import query_weights, received_attention
from attnguide.capture.routes import EfficientCapture, OutputAttentionsCapture, make_capture
from attnguide.capture.sdpa_profiles import sdpa_with_profile
from attnguide.cli import build_parser
from attnguide.errors import AttentionCaptureError, ConfigError
from attnguide.guiding.batch_losses import guide_losses, weighted_sum

INTERFACE_FAMILIES = ["albert", "bert", "distilbert", "electra", "mpnet", "roberta", "xlm-roberta"]
OTHER_FAMILIES = ["deberta-v2"]
assert sorted(INTERFACE_FAMILIES + OTHER_FAMILIES) == sorted(CONFIGS)


def tiny(family: str, **overrides) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = CONFIGS[family]()
    config.num_labels = 3
    for name, value in overrides.items():
        setattr(config, name, value)
    return AutoModelForSequenceClassification.from_config(config).eval()


def guided_step(model, capture, inputs, guide: GuideConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Profiles, and the gradient of the guiding term alone with respect to every weight (zero for
    weights it does not reach, such as the value projections, whichever way a route reports that)."""
    mask = inputs["attention_mask"]
    model.zero_grad()
    outputs = model(**inputs, **capture.forward_kwargs(mask))
    profiles = capture.profiles(outputs, mask)
    weighted_sum(guide_losses(profiles, mask, guide, capture.heads_per_layer), guide, step=1).backward()
    grads = torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in model.parameters()]
    )
    return profiles.detach(), grads


def both_routes(model, guide: GuideConfig, inputs) -> tuple[tuple, tuple]:
    reference = copy.deepcopy(model)
    efficient = guided_step(model, EfficientCapture(model, guide), inputs, guide)
    eager = guided_step(reference, OutputAttentionsCapture(reference, guide), inputs, guide)
    return efficient, eager


@pytest.mark.parametrize("family", INTERFACE_FAMILIES)
def test_efficient_route_matches_eager_maps(family: str) -> None:
    guide = GuideConfig(mdg_weight=1.0, pdg_weight=1.0)
    inputs = batch()  # two of the four sequences are padded
    (profiles, grads), (eager_profiles, eager_grads) = both_routes(tiny(family), guide, inputs)
    assert profiles.shape == eager_profiles.shape == (4, 2 * 4, 10)
    assert torch.allclose(profiles, eager_profiles, rtol=0, atol=1e-5)
    assert torch.all(profiles[1, :, 7:] == 0) and torch.all(profiles[3, :, 4:] == 0)
    assert eager_grads.norm() > 1e-3
    assert (grads - eager_grads).norm() <= 1e-4 * eager_grads.norm()


def counted(function, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(function.__name__)
        return function(*args, **kwargs)

    return wrapper


def test_last_k_layers_cost_only_those_layers(monkeypatch) -> None:
    calls: list[str] = []
    for module, name in (
        (received_profiles, "profile_by_blocks"),  # each place that looks the function up
        (sdpa_profiles, "profile_by_blocks"),
        (sdpa_profiles, "_normalized_maps"),
        (attention_function, "math_attention_with_profile"),
    ):
        monkeypatch.setattr(module, name, counted(getattr(module, name), calls))
    guide = GuideConfig(layers="last:1", scope="per-layer")
    model = tiny("bert", num_hidden_layers=3)
    model.train()
    model(**batch(), **EfficientCapture(model, guide).forward_kwargs())  # CPU with dropout: math path
    assert calls == ["math_attention_with_profile"]
    calls.clear()
    (profiles, grads), (eager_profiles, eager_grads) = both_routes(model.eval(), guide, batch())
    assert calls == ["_normalized_maps"] * 2  # the guided layer's forward and backward passes
    assert profiles.shape == (4, 4, 10)
    assert torch.allclose(profiles, eager_profiles, rtol=0, atol=1e-5)
    assert (grads - eager_grads).norm() <= 1e-4 * eager_grads.norm()


def test_unpadded_batch_and_additive_masks_give_the_same_profiles() -> None:
    g = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 3, 7, 4, generator=g), torch.randn(2, 3, 7, 4, generator=g)
    valid = torch.ones(2, 7, dtype=torch.long)
    valid[1, 5:] = 0
    dense = torch.softmax(query @ key.transpose(-1, -2) / 2 + (valid[:, None, None, :] - 1) * 1e9, -1)
    expected = torch.einsum("bhqk,bq->bhk", dense, query_weights(valid))
    allowed = valid[:, None, None, :].bool().expand(2, 1, 7, 7)
    additive = torch.zeros(2, 1, 7, 7).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (allowed, additive, allowed[:, :, :1]):
        for chunk in (1, 40, 100, 10_000):  # one query, uneven query groups, two heads, all
            got = received_attention(query, key, mask, query_weights(valid), chunk_elements=chunk)
            assert torch.allclose(got, expected, atol=1e-6)
    full = torch.ones(2, 7)
    unmasked = torch.einsum("bhqk,bq->bhk", torch.softmax(query @ key.transpose(-1, -2) / 2, -1), full / 7)
    assert torch.allclose(received_attention(query, key, None, query_weights(full)), unmasked, atol=1e-6)


SPANS = [
    (slice(0, 7), slice(0, 5)),
    (slice(0, 7), slice(0, 5)),
    (slice(1, 4), slice(2, 5)),
    (slice(3, 3), slice(0, 5)),
]


@pytest.mark.parametrize("spans", [None, SPANS], ids=["all", "spans"])
@pytest.mark.parametrize("elements", [1, 6, 35, 70, 105, 500, 10_000])
def test_blocks_cover_every_score_once_within_the_budget(elements: int, spans) -> None:
    batch, heads, queries, keys = 4, 5, 7, 5
    seen = torch.zeros(batch, heads, queries, keys, dtype=torch.long)
    for block in score_blocks._blocks(batch, heads, queries, keys, elements, spans):
        assert seen[block].numel() <= max(elements, keys)  # never less than one query
        seen[block] += 1
    expected = torch.zeros_like(seen)
    for row, (query_span, key_span) in enumerate(spans or [(slice(None), slice(None))] * batch):
        expected[row, :, query_span, key_span] = 1
    assert torch.equal(seen, expected)


def test_blocks_skip_padding_and_keep_the_mask_only_where_it_hides_keys_inside() -> None:
    valid = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]])
    heads = torch.zeros(4, 2, 5, 3)
    padding_bias = score_blocks.score_bias(valid.bool()[:, None, None, :], torch.float32)

    def covered(rows: slice, bias, weights) -> tuple[torch.Tensor, bool]:
        blocks, masked = score_blocks.visible_blocks(heads[rows], heads[rows], bias, weights, 10)
        seen = torch.zeros(2, 2, 5, 5, dtype=torch.long)
        for block in blocks:
            seen[block] += 1
        return seen, masked

    def spans(*row_spans) -> torch.Tensor:
        expected = torch.zeros(2, 2, 5, 5, dtype=torch.long)
        for row, (query_span, key_span) in enumerate(row_spans):
            expected[row, :, query_span, key_span] = 1
        return expected

    right_left = query_weights(valid[:2])
    seen, masked = covered(slice(0, 2), padding_bias[:2], right_left)
    assert not masked and torch.equal(seen, spans((slice(0, 3),) * 2, (slice(2, 5),) * 2))
    seen, masked = covered(slice(2, 4), padding_bias[2:], query_weights(valid[2:]))  # key 1 hidden inside
    assert masked and torch.equal(seen, spans((slice(0, 4),) * 2, (slice(0, 0), slice(0, 0))))
    by_query = padding_bias[:2].expand(2, 1, 5, 5).clone()
    seen, masked = covered(slice(0, 2), by_query, right_left)
    assert masked and torch.equal(seen, spans((slice(0, 3), slice(0, 5)), (slice(2, 5), slice(0, 5))))
    seen, masked = covered(slice(0, 2), None, query_weights(torch.ones(2, 5)))
    assert not masked and torch.equal(seen, spans((slice(0, 5),) * 2, (slice(0, 5),) * 2))
    gpu = heads[:2].to("meta")  # no host read-back there: every score, and the mask
    blocks, masked = score_blocks.visible_blocks(gpu, gpu, padding_bias[:2], right_left, 10)
    assert masked and blocks == list(score_blocks._blocks(2, 2, 5, 5, 10))


def padding(*rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    valid = torch.tensor(rows)
    return valid.bool()[:, None, None, :], valid


SOFT = torch.tensor([[0.0, -2.0, 0.0, -1e4, 0.0, 0.0], [0.0] * 6, [-1e4, 0.0, 0.0, 0.5, 0.0, -1e4]])
MASKS = {  # mask [batch, 1, queries | 1, keys]: True = attend, or additive; the queries that count
    "right and left padding, all-padding row": padding([1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0] * 6),
    "a hidden key inside": padding([1, 0, 1, 1, 1, 0], [1] * 6, [1, 1, 0, 0, 1, 1]),
    "by query": (torch.ones(3, 1, 6, 6).tril(1).bool(), torch.ones(3, 6, dtype=torch.long)),
    "additive, not the minimum": (SOFT.double()[:, None, None, :], torch.ones(3, 6, dtype=torch.long)),
}


@pytest.mark.parametrize("name", MASKS)
def test_routes_match_eager_attention_under_any_mask(name: str, dropout_free_route) -> None:
    """Outputs, profiles and all gradients against dense eager attention (float64), where the blocks
    skip padded queries and keys, keep a mask that hides a key inside, or keep every key."""
    g = torch.Generator().manual_seed(0)
    heads = [torch.randn(3, 2, 6, 4, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3)]
    mask, valid = MASKS[name]
    mask = mask.expand(3, 1, 6, 6)
    weights = query_weights(valid, torch.float64)
    seen = valid[:, :, None, None]  # the output of an all-padding sequence is SDPA's choice
    directions = (
        torch.randn(3, 6, 2, 4, dtype=torch.float64, generator=g) * seen,
        torch.randn(3, 2, 6, dtype=torch.float64, generator=g),
    )

    def eager(q, k, v):
        scores = q @ k.transpose(-1, -2) * 0.7
        if mask.dtype != torch.bool:
            scores = scores + mask
        else:
            scores = scores.masked_fill(~mask, torch.finfo(torch.float64).min)
        probs = torch.softmax(scores, -1)
        return (probs @ v).transpose(1, 2), torch.einsum("bhqk,bq->bhk", probs, weights)

    def results(output, profile) -> list[torch.Tensor]:
        loss = (output * directions[0]).sum() + (profile * directions[1]).sum()
        return [output * seen, profile, *torch.autograd.grad(loss, heads)]

    got = results(*sdpa_with_profile(*heads, mask, weights, 0.7, chunk_elements=30))
    expected = results(*eager(*heads))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(got, expected, strict=True))
    profile = received_attention(*heads[:2], mask, weights, 0.7, chunk_elements=7)
    grads = torch.autograd.grad((profile * directions[1]).sum(), heads[:2])
    expected_grads = torch.autograd.grad((eager(*heads)[1] * directions[1]).sum(), heads[:2])
    assert torch.allclose(profile, expected[1], atol=1e-10)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, expected_grads, strict=True))


def test_received_attention_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    query = torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    key = torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = valid[:, None, None, :].bool().expand(2, 1, 5, 5)
    weights = query_weights(valid, torch.float64)
    assert torch.autograd.gradcheck(
        lambda q, k: received_attention(q, k, mask, weights, 0.7, chunk_elements=2 * 2 * 5 * 2),
        (query, key),
    )


@pytest.fixture(params=["cpu-flash", "portable"])
def dropout_free_route(request) -> Iterator[str]:
    """Each route of attention without dropout: the CPU flash operators', and the portable one that
    accelerators take (forced on the CPU by ``portable_route``)."""
    assert sdpa_profiles.cpu_flash_available(), "this torch lacks the CPU flash operators"
    with sdpa_profiles.portable_route(request.param == "portable"):
        yield request.param


def test_portable_route_switches_the_cpu_route_and_restores_it(monkeypatch) -> None:
    calls: list[str] = []
    for route in (sdpa_profiles.SdpaWithProfile, sdpa_profiles.CpuFlashWithProfile):

        def recorded(*args, route=route, apply=route.apply):
            calls.append(route.__name__)
            return apply(*args)

        monkeypatch.setattr(route, "apply", recorded)
    heads = torch.randn(1, 2, 4, 8)
    weights = query_weights(torch.ones(1, 4))
    sdpa_with_profile(heads, heads, heads, None, weights)
    with sdpa_profiles.portable_route():
        sdpa_with_profile(heads, heads, heads, None, weights)
    with sdpa_profiles.portable_route(enabled=False):
        sdpa_with_profile(heads, heads, heads, None, weights)
    sdpa_with_profile(heads, heads, heads, None, weights)
    cpu, portable = "CpuFlashWithProfile", "SdpaWithProfile"
    assert calls == [cpu, portable, cpu, cpu]


@pytest.mark.parametrize(("padded", "columns"), [(True, 1), (False, 1), (True, 8)])
def test_sdpa_with_profile_gradcheck(padded: bool, columns: int, dropout_free_route, monkeypatch) -> None:
    """Output and profile together: the widened-head backward gives both gradients exactly, also
    with the heads widened by several columns as on an accelerator."""
    monkeypatch.setattr(sdpa_profiles, "_gradient_columns", lambda head_size, device: columns)
    g = torch.Generator().manual_seed(0)
    query, key, value = (
        torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3)
    )
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = valid[:, None, None, :].bool().expand(2, 1, 5, 5) if padded else None
    weights = query_weights(valid if padded else torch.ones(2, 5), torch.float64)
    assert torch.autograd.gradcheck(
        lambda q, k, v: sdpa_with_profile(q, k, v, mask, weights, 0.7, chunk_elements=20),
        (query, key, value),
    )


def test_dropout_free_routes_match_sdpa_and_eager_profiles(dropout_free_route) -> None:
    """Float32, scores far from zero, padded queries, an all-padding sequence: the output is SDPA's,
    the profile eager attention's."""
    g = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(3, 2, 6, 4, generator=g) * 4 for _ in range(3))
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    mask = valid[:, None, None, :].bool().expand(3, 1, 6, 6)
    output, profile = sdpa_with_profile(query, key, value, mask, query_weights(valid))
    sdpa = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.allclose(output[:2], sdpa.transpose(1, 2)[:2], atol=1e-5)
    scores = (query @ key.transpose(-1, -2) / 2).masked_fill(~mask, torch.finfo(torch.float32).min)
    expected = torch.einsum("bhqk,bq->bhk", torch.softmax(scores, -1), query_weights(valid))
    assert torch.allclose(profile, expected, atol=1e-6)
    assert torch.all(profile[2] == 0)


@pytest.mark.parametrize("autocast", [False, True])
def test_dropout_free_routes_in_bfloat16_follow_float32(autocast: bool, dropout_free_route) -> None:
    """Half-precision heads, also under CPU autocast as users run it, keep the profile in float32
    and the gradients close."""
    g = torch.Generator().manual_seed(0)
    heads = [torch.randn(2, 3, 16, 8, generator=g, requires_grad=True) for _ in range(3)]
    valid = torch.ones(2, 16)
    valid[1, 10:] = 0
    mask, weights = valid.bool()[:, None, None, :].expand(2, 1, 16, 16), query_weights(valid)
    direction = torch.randn(2, 3, 16, generator=g)

    def run(tensors, enabled=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            output, profile = sdpa_with_profile(*tensors, mask, weights)
            loss = output.float().sum() + (profile * direction).sum()
        return profile, torch.autograd.grad(loss, tensors)

    profile, grads = run(heads)
    half_profile, half_grads = run([x.detach().bfloat16().requires_grad_() for x in heads], autocast)
    assert half_profile.dtype == torch.float32
    assert torch.allclose(half_profile, profile, atol=2e-3)
    for full, half in zip(grads, half_grads, strict=True):
        assert (half.float() - full).norm() <= 2e-2 * full.norm()


def test_cpu_dropout_path_matches_dropout_of_the_same_map() -> None:
    g = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 6, 4, generator=g, requires_grad=True) for _ in range(3))
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    mask = valid[:, None, None, :].bool().expand(2, 1, 6, 6)
    weights = query_weights(valid)
    direction = torch.randn(2, 3, 6, generator=g)
    torch.manual_seed(1)
    output, profile = sdpa_profiles.math_attention_with_profile(
        query, key, value, mask, weights, 0.5, dropout=0.3
    )
    torch.manual_seed(1)
    scores = (query @ key.transpose(-1, -2) * 0.5).masked_fill(~mask, torch.finfo(torch.float32).min)
    expected = (torch.nn.functional.dropout(torch.softmax(scores, -1), 0.3) @ value).transpose(1, 2)
    assert torch.allclose(output, expected, atol=1e-6)
    chunked = received_attention(query, key, mask, weights, 0.5, chunk_elements=20)
    assert torch.allclose(profile, chunked, atol=1e-6)
    grads = torch.autograd.grad((profile * direction).sum(), (query, key))
    chunked_grads = torch.autograd.grad((chunked * direction).sum(), (query, key))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, chunked_grads, strict=True))


def test_training_forward_with_attention_dropout_matches_eager() -> None:
    model = tiny("bert", attention_probs_dropout_prob=0.5, hidden_dropout_prob=0.0)
    eager = copy.deepcopy(model)
    capture, eager_capture = (
        EfficientCapture(model, GuideConfig()),
        OutputAttentionsCapture(eager, GuideConfig()),
    )
    inputs, mask = batch(), batch()["attention_mask"]
    eval_profiles = eager_capture.profiles(eager(**inputs, output_attentions=True), mask)
    torch.manual_seed(3)
    outputs = model.train()(**inputs, **capture.forward_kwargs(mask))
    torch.manual_seed(3)
    eager_outputs = eager.train()(**inputs, output_attentions=True)
    assert torch.allclose(outputs.logits, eager_outputs.logits, atol=1e-6)  # the same dropout draws
    profiles = capture.profiles(outputs, mask)
    assert torch.allclose(profiles[:, :4], eval_profiles[:, :4], atol=1e-6)  # layer 0: before dropout
    assert not torch.allclose(profiles[:, :4], eager_capture.profiles(eager_outputs, mask)[:, :4], atol=1e-3)


def test_unrecorded_forward_is_plain_sdpa() -> None:
    model = tiny("bert")
    sdpa = copy.deepcopy(model)
    sdpa.set_attn_implementation("sdpa")
    EfficientCapture(model, GuideConfig())
    assert model.config._attn_implementation == ATTENTION_NAME
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, sdpa(**inputs).logits)


def test_profiles_need_a_recorded_forward() -> None:
    model = tiny("bert")
    capture = EfficientCapture(model, GuideConfig())
    inputs = batch()
    outputs = model(**inputs)
    with pytest.raises(AttentionCaptureError, match="0 attention calls"):
        capture.profiles(outputs, inputs["attention_mask"])


def test_recorder_maps_recomputed_calls_to_the_layers_their_modules_served() -> None:
    heads = torch.zeros(1, 2, 3, 4)
    first, second = torch.nn.Module(), torch.nn.Module()
    recorder = attention_function.ProfileRecorder(layers=[1], num_layers=2)
    assert [recorder.next_layer_is_guided(m, heads, heads, {}) for m in (first, second)] == [False, True]
    recorder.record(heads)
    # activation checkpointing reruns the layers in the backward pass, last first
    assert [recorder.next_layer_is_guided(m, heads, heads, {}) for m in (second, first)] == [True, False]
    recorder.record(heads)
    assert len(recorder.profiles) == 1 and recorder.calls == 4
    shared = attention_function.ProfileRecorder(layers=[1], num_layers=2)  # one module for both layers
    module = torch.nn.Module()
    assert [shared.next_layer_is_guided(module, heads, heads, {}) for _ in range(2)] == [False, True]
    with pytest.raises(
        AttentionCaptureError, match=r"served layers \[0, 1\] in the forward pass, guided and not"
    ):
        shared.next_layer_is_guided(module, heads, heads, {})


@pytest.mark.parametrize("family", INTERFACE_FAMILIES + OTHER_FAMILIES)
def test_auto_takes_the_efficient_route_where_the_model_allows(family: str) -> None:
    capture = make_capture(tiny(family), GuideConfig())
    assert capture.route == ("efficient" if family in INTERFACE_FAMILIES else "output-attentions")


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_efficient_on_an_unsupported_model_is_an_error(family: str) -> None:
    with pytest.raises(AttentionCaptureError, match="attention interface"):
        make_capture(tiny(family), GuideConfig(capture="efficient"))


def test_albert_with_inner_groups_is_refused_by_the_efficient_route() -> None:
    model = tiny("albert", inner_group_num=2)
    with pytest.raises(AttentionCaptureError, match="4 attention calls for 2 layers"):
        make_capture(model, GuideConfig(capture="efficient"))
    assert model.config._attn_implementation != ATTENTION_NAME


def test_capture_setting() -> None:
    model = tiny("bert")
    assert make_capture(model, GuideConfig(profile="released-code")).route == "output-attentions"
    assert make_capture(model, GuideConfig(capture="output-attentions")).route == "output-attentions"
    assert GuideConfig(capture="efficient").to_dict()["capture"] == "efficient"
    with pytest.raises(ConfigError, match="capture"):
        GuideConfig(capture="fast")
    with pytest.raises(ConfigError, match="received"):
        GuideConfig(capture="efficient", profile="released-code")
    args = build_parser().parse_args(["train", "--train", "x", "--output-dir", "y", "--capture", "efficient"])
    assert args.capture == "efficient"


def test_model_without_attention_is_refused() -> None:
    config = transformers.FNetConfig(
        hidden_size=32, num_hidden_layers=2, intermediate_size=37, vocab_size=99, num_labels=2
    )
    model = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(AttentionCaptureError):
        make_capture(model, GuideConfig())


def test_guided_trainer_with_efficient_capture_trains_like_eager_maps(tmp_path) -> None:
    guide = dict(mdg_weight=1, pdg_weight=1)
    trainer, efficient = train(
        tmp_path,
        GuidedTrainer,
        tiny_bert(dropout=0.0),
        optim="sgd",
        guide_config=GuideConfig(**guide, capture="efficient"),
    )
    assert trainer.capture.route == "efficient"
    assert trainer.model.config._attn_implementation == ATTENTION_NAME
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logs and all({"task_loss", "mdg_loss", "pdg_loss"} <= set(entry) for entry in logs)
    _, eager = train(
        tmp_path,
        GuidedTrainer,
        tiny_bert(dropout=0.0),
        optim="sgd",
        guide_config=GuideConfig(**guide, capture="output-attentions"),
    )
    _, plain = train(tmp_path, GuidedTrainer, tiny_bert(dropout=0.0), optim="sgd")
    # plain SGD: Adam would magnify the float rounding of gradients near zero into whole steps
    assert (efficient - eager).abs().max() < 1e-3 * (efficient - plain).abs().max()
