"""The command line end to end on a tiny model: train, eval, demo, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from attnguide.cli import build_parser, main
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_jsonl
from attnguide.source_revision import source_revision


@pytest.fixture(scope="module")
def nli_files(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("nli")
    write_jsonl(folder / "train.jsonl", make_dataset(48, seed=1))
    write_jsonl(folder / "dev.jsonl", make_dataset(24, seed=2))
    return str(folder / "train.jsonl"), str(folder / "dev.jsonl")


def train(tiny_model_dir, nli_files, out: Path, *extra: str) -> dict:
    argv = [
        "-q",
        "train",
        "--model",
        tiny_model_dir,
        "--train",
        nli_files[0],
        "--dev",
        nli_files[1],
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "48",
        "--seed",
        "3",
        "--logging-steps",
        "2",
        "--output-dir",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads((out / "metrics.json").read_text())


def test_train_then_eval(tiny_model_dir, nli_files, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    metrics = train(
        tiny_model_dir, nli_files, out, "--guide", "mdg+pdg", "--mdg-weight", "0.5", "--layers", "last:1"
    )
    assert set(metrics) == {
        "accuracy",
        "macro_f1",
        "mdg_loss",
        "pdg_loss",
        "pattern_loss",
        "disagreement_loss",
        "head_similarity",
        "special_token_share",
    }
    logged = [entry for entry in json.loads((out / "log_history.json").read_text()) if "loss" in entry]
    assert {"task_loss", "mdg_loss", "pdg_loss"} <= set(logged[-1])
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["guide"] == {
        "guides": "mdg+pdg",
        "mdg_weight": 0.5,
        "pdg_weight": 0.001,
        "pattern_weight": 1.0,
        "disagreement_weight": 1.0,
        "pattern_spread": "first:2,previous:2,next:2,delimiter:2,period:2",
        "temperature": 2.0,
        "layers": "last:1",
        "scope": "joint",
        "profile": "received",
        "warmup_steps": 0,
        "capture": "auto",
    }
    assert run["capture"] == "efficient" and run["data"]["train"]["examples"] == 48
    assert len(run["data"]["dev"]["sha256"]) == 64 and run["versions"]["transformers"].startswith("5.")
    assert run["versions"].get("attnguide revision") == source_revision()  # absent only outside a checkout
    assert not list(out.glob("checkpoint-*")) and not list(tmp_path.glob(".*partial"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    capsys.readouterr()

    predictions = tmp_path / "preds.jsonl"
    assert (
        main(["-q", "eval", "--model", str(out), "--data", nli_files[1], "--output", str(predictions)]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == pytest.approx(metrics["accuracy"])
    assert printed["mdg_loss"] == pytest.approx(metrics["mdg_loss"], rel=1e-5)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 24 and rows[0]["prediction"] in {"entailment", "neutral", "contradiction"}


def test_zero_weights_reproduce_unguided_run(tiny_model_dir, nli_files, tmp_path) -> None:
    plain = train(tiny_model_dir, nli_files, tmp_path / "none", "--guide", "none")
    zero = train(
        tiny_model_dir,
        nli_files,
        tmp_path / "zero",
        "--guide",
        "mdg+pdg",
        "--mdg-weight",
        "0",
        "--pdg-weight",
        "0",
    )
    train(tiny_model_dir, nli_files, tmp_path / "guided", "--guide", "mdg+pdg", "--mdg-weight", "1")
    for key in ("accuracy", "macro_f1", "mdg_loss", "pdg_loss", "head_similarity", "special_token_share"):
        assert zero[key] == plain[key], key
    assert (tmp_path / "zero" / "model.safetensors").read_bytes() == (
        tmp_path / "none" / "model.safetensors"
    ).read_bytes()
    assert (tmp_path / "guided" / "model.safetensors").read_bytes() != (
        tmp_path / "none" / "model.safetensors"
    ).read_bytes()
    assert "mdg_loss" in json.loads((tmp_path / "guided" / "log_history.json").read_text())[0]


def test_activation_checkpointing_and_bf16_from_the_command_line(tiny_model_dir, nli_files, tmp_path) -> None:
    guided = ("--guide", "mdg+pdg", "--mdg-weight", "1")
    plain = train(tiny_model_dir, nli_files, tmp_path / "plain", *guided)
    checkpointed = train(tiny_model_dir, nli_files, tmp_path / "ckpt", *guided, "--activation-checkpointing")
    assert checkpointed == plain  # layers recomputed in the backward pass: the same run
    assert (tmp_path / "ckpt" / "model.safetensors").read_bytes() == (
        tmp_path / "plain" / "model.safetensors"
    ).read_bytes()
    half = train(tiny_model_dir, nli_files, tmp_path / "bf16", *guided, "--bf16")  # CPU autocast here
    options = json.loads((tmp_path / "bf16" / "run.json").read_text())["options"]
    assert options["bf16"] and 0 <= half["accuracy"] <= 1
    assert (tmp_path / "bf16" / "model.safetensors").read_bytes() != (
        tmp_path / "plain" / "model.safetensors"
    ).read_bytes()  # the products ran in bfloat16


@pytest.mark.parametrize(
    ("argv", "quiet", "debug"),
    [(["-q", "demo"], True, False), (["demo", "-q", "--debug"], True, True), (["demo"], False, False)],
)
def test_global_options_go_before_or_after_the_subcommand(argv, quiet, debug) -> None:
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.debug) == (quiet, debug)


def test_demo_on_a_tiny_model(tiny_model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert (
        main(
            [
                "-q",
                "demo",
                "--model",
                tiny_model_dir,
                "--train-size",
                "30",
                "--epochs",
                "1",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| fine-tuned, MDG+PDG |" in table and "| fine-tuned, no guiding |" in table
    assert (out / "summary.md").read_text().strip() == table.strip()
    assert set(json.loads((out / "summary.json").read_text())) == {
        "pre-trained, not fine-tuned",
        "fine-tuned, no guiding",
        "fine-tuned, MDG+PDG",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train", "missing.jsonl"], "missing.jsonl"),
        (["--guide", "mdg+xyz"], "unknown guide 'xyz'"),
        (["--mdg-weight", "-1"], "mdg_weight must be a finite number >= 0"),
        (["--layers", "7"], "out of range"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--model", "./no/such/model"], "model path does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_model_dir, nli_files, tmp_path, capsys, argv, message) -> None:
    options = {"--model": tiny_model_dir, "--train": nli_files[0]}
    options.update(zip(argv[::2], argv[1::2], strict=True))
    out = tmp_path / "out"
    assert main(["train", *[x for pair in options.items() for x in pair], "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("attnguide: error:")
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_non_empty_output_dir_is_refused(tiny_model_dir, nli_files, tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert (
        main(["train", "--model", tiny_model_dir, "--train", nli_files[0], "--output-dir", str(tmp_path)])
        == 2
    )
    assert "use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_console_script_reports_without_traceback(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnguide",
            "eval",
            "--model",
            str(tmp_path / "nope"),
            "--data",
            str(tmp_path / "x.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "x.jsonl" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--queries", "q.tsv"], "--queries describe ranking data; with --task classification use --format"),
        (
            ["--task", "ranking", "--label", "y"],
            "--label describe classification, embedding, regression and token-classification data; "
            "with --task ranking",
        ),
    ],
)
def test_another_tasks_options_are_refused(nli_files, tmp_path, capsys, argv, message) -> None:
    assert main(["train", "--train", nli_files[0], *argv, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
