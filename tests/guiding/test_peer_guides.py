"""Pattern guidance and disagreement regularisation on hand-built attention maps."""

from __future__ import annotations

import pytest
import torch

from attnguide.errors import ConfigError
from attnguide.guiding.attention_losses import disagreement_loss, pattern_loss
from attnguide.guiding.pattern_spread import parse_spread
from attnguide.guiding.patterns import pattern_targets


def test_disagreement_identical_heads_is_one_disjoint_heads_is_zero() -> None:
    row = torch.softmax(torch.randn(1, 1, 5, 5), -1)
    assert disagreement_loss(row.expand(2, 4, 5, 5)).item() == pytest.approx(1.0, abs=1e-6)
    disjoint = torch.zeros(1, 3, 3, 3)
    for head in range(3):
        disjoint[0, head, :, head] = 1.0  # head h: every query looks at key h only
    assert disagreement_loss(disjoint).item() == pytest.approx(0.0, abs=1e-7)


def test_disagreement_known_value_and_padding() -> None:
    # Two heads, two real positions; every row of head 0 is [1, 0], of head 1 [0.6, 0.8]:
    # flattened maps [1, 0, 1, 0] and [0.6, 0.8, 0.6, 0.8], cosine (0.6 + 0.6) / (√2 · √2) = 0.6.
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0, :2, :2] = torch.tensor([1.0, 0.0])
    maps[0, 1, :2, :2] = torch.tensor([0.6, 0.8])
    maps[0, :, 2, :] = torch.rand(2, 3)  # garbage in the padding query row ...
    maps[0, :, :2, 2] = torch.rand(2, 2)  # ... and the padding key column
    mask = torch.tensor([[1, 1, 0]])
    assert disagreement_loss(maps, mask).item() == pytest.approx(0.6, abs=1e-6)
    assert disagreement_loss(maps).item() != pytest.approx(0.6, abs=1e-3)


def test_pattern_targets_for_a_short_sentence() -> None:
    # [CLS] a . b [SEP] [PAD]: ids 101 5 6 7 102 0; period id 6, delimiter id 102
    ids = torch.tensor([[101, 5, 6, 7, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    targets = pattern_targets(ids, mask, delimiter_ids=[102], period_ids=[6])
    first, rows = targets["first"]
    assert rows.tolist() == [[True] * 5 + [False]]
    assert first[0, 3].tolist() == [1, 0, 0, 0, 0, 0]
    previous = targets["previous"][0][0]
    assert previous[0].argmax() == 0 and previous[3].argmax() == 2
    following = targets["next"][0][0]
    assert following[1].argmax() == 2 and following[4].argmax() == 4  # the last real token: itself
    assert targets["delimiter"][0][0, 2].tolist() == [0, 0, 0, 0, 1, 0]
    assert targets["period"][0][0, 0].tolist() == [0, 0, 1, 0, 0, 0]
    no_period = pattern_targets(ids, mask, delimiter_ids=[102], period_ids=[999])
    assert not no_period["period"][1].any()


def test_pattern_loss_zero_on_target_and_known_value() -> None:
    ids = torch.tensor([[101, 5, 6, 102]])
    mask = torch.ones(1, 4, dtype=torch.long)
    target, rows = pattern_targets(ids, mask, [102], [6])["first"]
    maps = target[:, None]
    assert pattern_loss(maps, maps, rows[:, None]).item() == 0.0
    uniform = torch.full((1, 1, 4, 4), 0.25)
    # every row: (1 - 0.25)^2 + 3 * 0.25^2 = 0.75 over 4 keys -> mean 0.1875
    assert pattern_loss(uniform, maps, rows[:, None]).item() == pytest.approx(0.1875)


def test_pattern_loss_does_not_change_with_padding() -> None:
    ids = torch.tensor([[101, 5, 6, 102]])
    target, rows = pattern_targets(ids, torch.ones(1, 4, dtype=torch.long), [102], [6])["first"]
    unpadded = pattern_loss(torch.full((1, 1, 4, 4), 0.25), target[:, None], rows[:, None])
    padded_ids = torch.tensor([[101, 5, 6, 102, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    padded_target, padded_rows = pattern_targets(padded_ids, mask, [102], [6])["first"]
    maps = torch.zeros(1, 1, 6, 6)
    maps[..., :4] = 0.25  # padded keys get no attention, as the model's mask makes it
    loss = pattern_loss(maps, padded_target[:, None], padded_rows[:, None], mask)
    assert loss.item() == pytest.approx(unpadded.item()) == pytest.approx(0.1875)


def test_spread_parsing() -> None:
    assert parse_spread("first:2,next:1", 4) == ["first", "first", "next", None]
    assert parse_spread("first:2,previous:2,next:2,delimiter:2,period:2", 4) == [
        "first",
        "first",
        "previous",
        "previous",
    ]
    with pytest.raises(ConfigError, match="pattern spread"):
        parse_spread("diagonal:2", 12)


def test_peer_guides_train_a_tiny_model_through_the_trainer(tmp_path, tiny_model_dir) -> None:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from attnguide import GuideConfig, GuidedTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tokenizer(
        ["A man plays. He sings", "a dog", "Rain. Wind. Sun", "c"], ["b a", "a. c", "d", "the end."]
    )
    data = Dataset.from_dict({**enc, "labels": [0, 1, 0, 1]})
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    before = [p.detach().clone() for p in model.parameters()]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    guide = GuideConfig(
        guides="pattern+disagreement", pattern_spread="first:1,previous:1,delimiter:1,period:1"
    )
    trainer = GuidedTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, guide_config=guide
    )
    assert trainer.capture.route == "output-attentions"
    assert list(trainer.guided.tokens) == ["pattern"]  # what its row's from_tokenizer made, disagreement none
    assert trainer.guided.tokens["pattern"].delimiters == [tokenizer.sep_token_id]
    assert trainer.guided.tokens["pattern"].periods == [tokenizer.convert_tokens_to_ids(".")]
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all(0 < e["pattern_loss"] < 1 and 0 < e["disagreement_loss"] <= 1 for e in logged)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
