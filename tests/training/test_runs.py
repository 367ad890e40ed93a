"""Long-run safety: kill and resume, non-finite losses, several processes, determinism."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import attnguide.guiding.registry as registry
from attnguide.cli import main
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_jsonl

KILLER = str(Path(__file__).parents[1] / "killer.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("runs-data")
    write_jsonl(folder / "train.jsonl", make_dataset(40, seed=4))
    write_jsonl(folder / "dev.jsonl", make_dataset(21, seed=5))
    return str(folder / "train.jsonl"), str(folder / "dev.jsonl")


def train_args(model: str, data: tuple[str, str], out: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "train",
        "--model",
        model,
        "--train",
        data[0],
        "--dev",
        data[1],
        "--guide",
        "mdg+pdg",
        "--mdg-weight",
        "0.1",
        "--pdg-weight",
        "0.01",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "40",
        "--seed",
        "7",
        "--logging-steps",
        "5",
        "--output-dir",
        str(out),
        *extra,
    ]


def run_killed(argv: list[str], **kill: int) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k.upper(): str(v) for k, v in kill.items()}}
    return subprocess.run([sys.executable, KILLER, *argv], capture_output=True, text=True, env=env)


def test_kill_mid_epoch_then_resume_matches_uninterrupted(tiny_model_dir, data, tmp_path) -> None:
    whole = tmp_path / "whole"
    assert main(train_args(tiny_model_dir, data, whole)) == 0
    out = tmp_path / "killed"
    argv = train_args(tiny_model_dir, data, out, "--save-steps", "4")
    # 10 steps an epoch: killed at step 13 (mid second epoch), the newest checkpoint is 12;
    # killed again while checkpoint 16 is being written, which must not count as complete.
    assert run_killed(argv, kill_step=13).returncode == -9
    partial = tmp_path / ".killed.partial"
    assert sorted(p.name for p in partial.glob("checkpoint-*")) == ["checkpoint-12"] and not out.exists()
    assert run_killed([*argv, "--resume"], kill_in_checkpoint=16).returncode == -9
    assert (partial / "checkpoint-16").is_dir() and not (
        partial / "checkpoint-16" / "trainer_state.json"
    ).exists()
    # each checkpoint records the seconds spent up to it; the resumed run counts them in its cost
    before = json.loads((partial / "checkpoint-12" / "attnguide-seconds.json").read_text())["seconds"]
    assert before > 0
    assert main([*argv, "--resume"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    expected = json.loads((whole / "metrics.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from"].endswith("checkpoint-12")
    assert run["seconds_before_resuming"] == before and run["seconds"] > before
    assert json.loads((whole / "run.json").read_text())["seconds_before_resuming"] is None
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert f"{resumed[key]:.6g}" == f"{value:.6g}", key
    assert main([*argv, "--resume"]) == 0  # a finished run resumes to itself


def test_resume_with_other_settings_is_refused(tiny_model_dir, data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        run_killed(train_args(tiny_model_dir, data, out, "--save-steps", "4"), kill_step=5).returncode == -9
    )
    argv = train_args(tiny_model_dir, data, out, "--save-steps", "4", "--resume")
    argv[argv.index("--seed") + 1] = "8"
    assert main(argv) == 2
    assert "seed=7" in capsys.readouterr().err


def forced_nan(monkeypatch, at_call: int) -> None:
    """Make the MDG loss NaN on its ``at_call``-th evaluation."""
    original = registry.GUIDES["mdg"]
    calls = {"n": 0}

    def mdg(profiles, mask, config):
        calls["n"] += 1
        value = original.compute(profiles, mask, config)
        return value * float("nan") if calls["n"] == at_call else value

    monkeypatch.setitem(registry.GUIDES, "mdg", dataclasses.replace(original, loss=mdg))


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(
    tiny_model_dir, data, tmp_path, monkeypatch, capsys
) -> None:
    forced_nan(monkeypatch, at_call=7)
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data, out, "--save-steps", "3")) == 2
    err = capsys.readouterr().err
    assert "step 7: the mdg loss is nan" in err and "checkpoint-6" in err and "--resume" in err
    assert (tmp_path / ".run.partial" / "checkpoint-6" / "trainer_state.json").is_file()


def test_nonfinite_loss_can_be_skipped(tiny_model_dir, data, tmp_path, monkeypatch) -> None:
    forced_nan(monkeypatch, at_call=3)
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data, out, "--skip-nonfinite")) == 0
    logs = json.loads((out / "log_history.json").read_text())
    assert logs[0]["skipped_batches"] == 1 and all(math.isfinite(e.get("mdg_loss", 0)) for e in logs)
    assert all(torch.isfinite(t).all() for t in load_file(out / "model.safetensors").values())


def test_same_command_same_metrics(tiny_model_dir, data, tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(train_args(tiny_model_dir, data, first)) == 0
    assert main(train_args(tiny_model_dir, data, second)) == 0
    assert (first / "metrics.json").read_text() == (second / "metrics.json").read_text()


@pytest.fixture(scope="module")
def tiny_model_no_dropout(tmp_path_factory, tiny_model_dir) -> str:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(
        tiny_model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    path = tmp_path_factory.mktemp("tiny-no-dropout")
    AutoModel.from_pretrained(tiny_model_dir, config=config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return str(path)


def test_two_processes_match_one_with_double_batch(tiny_model_no_dropout, data, tmp_path) -> None:
    def argv(out: Path, batch: int) -> list[str]:
        args = train_args(tiny_model_no_dropout, data, out, "--sampling", "sequential", "--lr", "1e-3")
        args[args.index("--batch-size") + 1] = str(batch)
        args[args.index("--epochs") + 1] = "1"
        return args

    assert main(argv(tmp_path / "one", 4)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a free port of this machine's choosing, so a second test run at the same time
    # (or a port left in use) cannot make this one fail
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*torchrun, "-m", "attnguide", *argv(tmp_path / "two", 2)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count('"accuracy"') == 1  # metrics printed once, by the main process
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    initial = load_file(Path(tiny_model_no_dropout) / "model.safetensors")
    assert one.keys() == two.keys()
    moved = max((one["bert." + k] - v).abs().max().item() for k, v in initial.items() if "bert." + k in one)
    assert moved > 1e-4  # training really changed the weights
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
