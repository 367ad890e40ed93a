"""LoRA adapters: guiding's gradient reaches them, the base stays frozen, both capture routes work
inside a PEFT model, and adapter runs go through train, eval and analyze like any run."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import tiny_bert, toy_data, train

from attnguide import GuideConfig, GuidedTrainer
from attnguide.capture.routes import make_capture
from attnguide.cli import main
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_jsonl
from attnguide.guiding.batch_losses import guide_losses, weighted_sum
from attnguide.training.adapters import add_lora
from attnguide.training.options import TrainOptions

LORA = TrainOptions(output_dir="unused", train="unused", lora_r=4, lora_dropout=0.0)


def adapter_gradients(guide: GuideConfig) -> dict[str, torch.Tensor]:
    """The gradients of one training step's loss (task + guiding) on a fresh LoRA model."""
    model = add_lora(tiny_bert(dropout=0.0), LORA, "SEQ_CLS")
    capture = make_capture(model, guide) if guide.active else None
    batch = {k: torch.tensor(v) for k, v in toy_data(4)[:4].items()}
    mask = batch["attention_mask"]
    model.train()
    outputs = model(**batch, **(capture.forward_kwargs(mask) if capture else {}))
    loss = outputs.loss
    if capture is not None:
        parts = guide_losses(capture.profiles(outputs, mask), mask, guide, capture.heads_per_layer)
        loss = loss + weighted_sum(parts, guide, step=0)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n}


def test_guiding_reaches_the_adapters_through_the_efficient_capture() -> None:
    guided = adapter_gradients(GuideConfig(mdg_weight=5.0, pdg_weight=5.0, capture="efficient"))
    plain = adapter_gradients(GuideConfig(guides="none"))
    assert guided.keys() == plain.keys() and any("lora_A" in n for n in guided)
    assert max((guided[n] - plain[n]).abs().max().item() for n in guided) > 1e-6


def test_the_base_stays_frozen_and_the_adapter_trains(tmp_path) -> None:
    model = add_lora(tiny_bert(), LORA, "SEQ_CLS")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer, _ = train(tmp_path, GuidedTrainer, model, guide_config=GuideConfig(mdg_weight=1.0))
    assert trainer.capture.route == "efficient"
    for name, parameter in model.named_parameters():
        moved = not torch.equal(before[name], parameter.detach())
        assert moved == parameter.requires_grad, name  # adapters and the head move, nothing else
    assert any("lora_B" in n and p.requires_grad for n, p in model.named_parameters())


@pytest.fixture(scope="module")
def nli(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("lora-data")
    write_jsonl(folder / "train.jsonl", make_dataset(24, seed=1))
    write_jsonl(folder / "dev.jsonl", make_dataset(12, seed=2))
    return str(folder / "train.jsonl"), str(folder / "dev.jsonl")


def test_an_adapter_run_trains_evaluates_and_is_analysed(tiny_model_dir, nli, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = [
        "-q",
        "train",
        "--model",
        tiny_model_dir,
        "--train",
        nli[0],
        "--dev",
        nli[1],
        "--guide",
        "mdg+pdg",
    ]
    argv += [
        "--lora-r",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "48",
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 0
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["lora_r"] == 4 and run["options"]["lora_targets"] == "query,value"
    assert 0 < run["trainable_parameters"] < run["total_parameters"] and run["capture"] == "efficient"
    trained = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert (
        main(
            [
                "-q",
                "eval",
                "--model",
                str(out),
                "--data",
                nli[1],
                "--max-length",
                "48",
                "--output",
                str(tmp_path / "p.jsonl"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["accuracy"] == trained["accuracy"]  # the adapter was loaded
    assert (
        main(["-q", "analyze", "--model", str(out), "--data", nli[1], "--output-dir", str(tmp_path / "a")])
        == 0
    )


def test_every_run_records_its_parameter_counts(tiny_model_dir, nli, tmp_path) -> None:
    out = tmp_path / "full"
    argv = [
        "-q",
        "train",
        "--model",
        tiny_model_dir,
        "--train",
        nli[0],
        "--epochs",
        "1",
        "--max-length",
        "48",
    ]
    assert main([*argv, "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["trainable_parameters"] == run["total_parameters"] > 0 and "lora_r" not in run["options"]


def test_targets_the_model_lacks_are_refused_with_the_names_it_has(
    tiny_model_dir, nli, tmp_path, capsys
) -> None:
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        tiny_model_dir,
        "--train",
        nli[0],
        "--lora-r",
        "4",
        "--lora-targets",
        "q_lin,v_lin",
    ]
    assert main([*argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--lora-targets: BertForSequenceClassification has no linear module named 'q_lin'" in err
    assert "; its encoder's linear modules: dense, key, query, value" in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".*"))
