"""Issue 27 for the library's surfaces: LoRA settings, ``GuidedLoss`` and ``GuideConfig`` refuse
misuse with a clear error naming the argument (``ConfigError`` is a ``ValueError``), and the
legitimate inputs next to each refusal work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import transformers
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
from tiny import CONFIGS, tiny_bert

from attnguide import GuideConfig
from attnguide.errors import AttentionCaptureError, AttnguideError, ConfigError
from attnguide.sentence_transformers import GuidedLoss
from attnguide.training.adapters import add_lora
from attnguide.training.options import TrainOptions, lora_options

# --- LoRA --------------------------------------------------------------------------------------


def lora(targets: str, **settings: Any) -> TrainOptions:
    return TrainOptions(output_dir="unused", train="unused", lora_r=4, lora_targets=targets, **settings)


def classifier(family: str) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = CONFIGS[family]()
    config.num_labels = 2
    return transformers.AutoModelForSequenceClassification.from_config(config)


@pytest.mark.parametrize("setting", [{"lora_alpha": 8.0}, {"lora_dropout": 0.2}, {"lora_targets": "key"}])
def test_adapter_settings_without_a_rank_are_refused(setting) -> None:
    flag = "--" + next(iter(setting)).replace("_", "-")
    with pytest.raises(AttnguideError, match=f"^{flag} needs --lora-r"):
        TrainOptions(output_dir="unused", train="unused", **setting)


def test_the_command_line_settings_are_filled_in_only_with_a_rank() -> None:
    not_given = {"lora_r": None, "lora_alpha": None, "lora_dropout": None, "lora_targets": None}
    assert lora_options(not_given)["lora_alpha"] == 16.0
    assert lora_options({**not_given, "lora_r": 8, "lora_dropout": 0.0}) == {
        "lora_r": 8,
        "lora_alpha": 16.0,
        "lora_dropout": 0.0,
        "lora_targets": "query,value",
    }
    with pytest.raises(AttnguideError, match="--lora-alpha needs --lora-r"):
        lora_options({**not_given, "lora_alpha": 16.0})  # given, though at the default
    record = TrainOptions(output_dir="o", train="t", **lora_options(not_given)).to_record()
    assert not any(key.startswith("lora") for key in record)  # a full fine-tune's run.json as before


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lora_r": 2.5}, "--lora-r must be a whole number >= 1, got 2.5"),
        ({"lora_r": True}, "--lora-r must be a whole number >= 1, got True"),
        ({"lora_r": 4, "lora_alpha": float("nan")}, "--lora-alpha must be a positive finite number"),
        ({"lora_r": 4, "lora_dropout": float("nan")}, "--lora-dropout must be at least 0 and below 1"),
        ({"lora_r": 4, "lora_targets": ""}, "--lora-targets: name at least one module"),
    ],
)
def test_settings_that_cannot_train_are_refused(settings, message) -> None:
    with pytest.raises(AttnguideError, match=message):
        TrainOptions(output_dir="unused", train="unused", **settings)


@pytest.mark.parametrize(
    ("family", "target", "encoder"),
    [
        ("bert", "classifier", "dense, key, query, value"),
        ("distilbert", "pre_classifier", "k_lin, lin1, lin2, out_lin, q_lin, v_lin"),
        ("roberta", "out_proj", "dense, key, query, value"),
        ("deberta-v2", "pooler.dense", "dense, key_proj"),
    ],
)
def test_the_task_head_is_no_lora_target(family, target, encoder) -> None:
    with pytest.raises(AttnguideError, match=rf"^--lora-targets: '{target}' is in .* task head") as error:
        add_lora(classifier(family), lora(target), "SEQ_CLS")
    assert f"its encoder's linear modules: {encoder}" in str(error.value)


@pytest.mark.parametrize(("family", "names"), [("distilbert", "q_lin"), ("mpnet", "dense, k, o, q, v")])
def test_families_with_other_layer_names_are_told_their_names(family, names) -> None:
    with pytest.raises(AttnguideError, match="has no linear module named 'query'") as error:
        add_lora(classifier(family), lora("query,value"), "SEQ_CLS")
    assert names in str(error.value) and "classifier" not in str(error.value)


def test_a_target_may_be_the_end_of_a_layer_path() -> None:
    model = add_lora(tiny_bert(), lora("attention.self.query"), "SEQ_CLS")
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    assert sorted(a.split("layer.")[1] for a in adapted) == [
        "0.attention.self.query",
        "1.attention.self.query",
    ]
    with pytest.raises(AttnguideError, match="no linear module named 'elf.query'"):
        add_lora(tiny_bert(), lora("elf.query"), "SEQ_CLS")  # a whole name, not part of one


def test_every_head_module_trains_in_full() -> None:
    """DeBERTa's pooler is part of its head, initialised fresh: frozen, it would stay random."""
    model = add_lora(classifier("deberta-v2"), lora("query_proj,value_proj"), "SEQ_CLS")
    trained = {n.split(".modules_to_save")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters()
               if p.requires_grad and "lora_" not in n}  # fmt: skip
    assert trained == {"pooler", "classifier"}


# --- GuidedLoss --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bi_encoder(tiny_model_dir) -> SentenceTransformer:
    torch.manual_seed(0)
    transformer = Transformer(tiny_model_dir, max_seq_length=32)
    return SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())])


def step(loss: GuidedLoss, model: SentenceTransformer) -> dict:
    model.train()
    features = [model.preprocess(["a dog runs", "a cat"]), model.preprocess(["a dog", "cats sleep here"])]
    return loss(features, torch.tensor([0.9, 0.1]))


class PartsLoss(torch.nn.Module):
    """CoSENT's loss returned as a dict under ``name``, or as ``kind`` of value."""

    def __init__(self, model: SentenceTransformer, name: str = "cosent", kind: str = "dict") -> None:
        super().__init__()
        self.model, self.inner, self.name, self.kind = model, losses.CoSENTLoss(model), name, kind

    def forward(self, features, labels):
        value = self.inner(features, labels)
        return {self.name: value} if self.kind == "dict" else value.item()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda m: GuidedLoss(m, "CoSENTLoss"), AttnguideError, "loss must be a sentence-transformers loss"),
        (lambda m: GuidedLoss(m, losses.CoSENTLoss), AttnguideError, "pass a loss made for the model"),
        (lambda m: GuidedLoss(m, lambda f, y: f), AttnguideError, "got function"),
        (lambda m: GuidedLoss("bert", losses.CoSENTLoss(m)), AttnguideError, "model must be a SentenceTrans"),
        (
            lambda m: GuidedLoss(m, losses.CoSENTLoss(m), {"guides": "mdg"}),
            ConfigError,
            "guide_config must be a GuideConfig, got dict",
        ),
        (
            lambda m: GuidedLoss(m, losses.CoSENTLoss(m), GuideConfig(layers=[5])),
            ConfigError,
            "layer index 5 is out of range",
        ),
    ],
)
def test_arguments_guided_loss_cannot_take(bi_encoder, make, error, message) -> None:
    with pytest.raises(error, match=message):
        make(bi_encoder)


def test_a_loss_made_for_another_model_is_refused(bi_encoder, tiny_model_dir) -> None:
    cross = CrossEncoder(tiny_model_dir, num_labels=1, max_length=32)
    with pytest.raises(AttnguideError, match="the loss CoSENTLoss was made for another model than the Cross"):
        GuidedLoss(cross, losses.CoSENTLoss(bi_encoder))
    with pytest.raises(AttnguideError, match="BinaryCrossEntropyLoss was made for another model"):
        GuidedLoss(bi_encoder, BinaryCrossEntropyLoss(cross))
    assert GuidedLoss(cross, BinaryCrossEntropyLoss(cross)).capture is not None


class Scorer(torch.nn.Module):
    """A loss that holds no model."""

    def forward(self, features, labels):
        return labels.sum()


def test_models_without_guidable_attention_are_refused() -> None:
    with pytest.raises(AttnguideError, match="Linear holds no transformers model"):
        GuidedLoss(torch.nn.Linear(2, 2), Scorer())
    fnet = transformers.FNetModel(
        transformers.FNetConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=37, vocab_size=99)
    )
    with pytest.raises(AttentionCaptureError, match="FNet"):
        GuidedLoss(torch.nn.Sequential(fnet), Scorer())


def test_the_pattern_guide_needs_the_model_tokenizer() -> None:
    with pytest.raises(AttnguideError, match=r"pattern guide .* has none \(model.tokenizer\)"):
        GuidedLoss(torch.nn.Sequential(tiny_bert().bert), Scorer(), GuideConfig("pattern"))


def test_a_loss_with_parts_keeps_them_unless_one_is_named_like_a_guide(bi_encoder) -> None:
    parts = step(GuidedLoss(bi_encoder, PartsLoss(bi_encoder), GuideConfig("mdg")), bi_encoder)
    assert list(parts) == ["cosent", "mdg"]
    with pytest.raises(AttnguideError, match="PartsLoss returns a part named 'mdg'"):
        step(GuidedLoss(bi_encoder, PartsLoss(bi_encoder, name="mdg"), GuideConfig("mdg")), bi_encoder)
    with pytest.raises(AttnguideError, match="PartsLoss returned float; a loss must return a tensor"):
        step(GuidedLoss(bi_encoder, PartsLoss(bi_encoder, kind="float"), GuideConfig("mdg")), bi_encoder)


def test_no_guides_is_the_wrapped_loss_alone(bi_encoder) -> None:
    loss = GuidedLoss(bi_encoder, losses.CoSENTLoss(bi_encoder), GuideConfig(guides="none"))
    assert loss.capture is None and list(step(loss, bi_encoder)) == ["task"]


# --- GuideConfig -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"guides": 3}, r"guides: expected text such as 'mdg\+pdg' or a list of guide names, got 3"),
        ({"guides": ["mdg", "pgd"]}, r"unknown guide 'pgd' \(did you mean 'pdg'\?\)"),
        ({"guides": "mdg,pdg"}, r"unknown guide 'mdg,pdg' \(did you mean 'mdg\+pdg'\?\)"),
        ({"mdg_wieght": 0.1}, r"unknown guide setting 'mdg_wieght' \(did you mean 'mdg_weight'\?\)"),
        ({"layers": "0,0"}, "layer 0 is given twice"),
        ({"layers": []}, "layers: name at least one layer"),
        ({"layers": [0.5]}, "a list of whole layer indices, got \\[0.5\\]"),
        ({"layers": ["a"]}, "a list of whole layer indices"),
        ({"layers": 1}, r"got 1 \(layer 1 alone: \[1\]\)"),
        ({"warmup_steps": True}, "warmup_steps must be a whole number >= 0, got True"),
        ({"profile": "bogus"}, "unknown profile 'bogus'; expected one of received, released-code"),
        ({"temperature": float("inf")}, "temperature must be a finite number > 0"),
    ],
)
def test_guide_settings_that_mean_nothing_are_refused(settings, message) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        GuideConfig(**settings)
    assert isinstance(error.value, ValueError)


def test_layers_are_checked_against_the_model_and_numpy_indices_are_fine() -> None:
    with pytest.raises(ConfigError, match="-1 and 1 are the same layer of a 2-layer model"):
        GuideConfig(layers=[1, -1]).layer_indices(2)
    assert GuideConfig(layers=[1, -1]).layer_indices(4) == [1, 3]
    assert GuideConfig(layers=[np.int64(1), 0]).layer_indices(2) == [0, 1]
    with pytest.raises(ConfigError, match="from_dict: expected a mapping of settings, got str"):
        GuideConfig.from_dict("mdg+pdg")
