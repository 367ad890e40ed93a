"""Best-checkpoint selection, early stopping and the --recipe presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_runs import data  # noqa: F401 (a fixture: the demo's template pairs)
from transformers import TrainerControl, TrainerState

from attnguide.cli import build_parser, main
from attnguide.cli.train import recipe_settings
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_jsonl
from attnguide.training.selection import BestCheckpoint


def train(model: str, data: tuple[str, str], out: Path, *extra: str) -> int:
    return main(
        ["-q", "train", "--model", model, "--train", data[0], "--dev", data[1], "--batch-size", "8"]
        + ["--max-length", "32", "--seed", "3", "--lr", "3e-3", "--output-dir", str(out), *extra]
    )


def test_the_best_epoch_is_kept_and_recorded(tiny_model_dir, data, tmp_path) -> None:
    assert train(tiny_model_dir, data, tmp_path / "run", "--epochs", "4", "--select-best") == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    chosen = run["selection"]
    assert chosen["metric"] == "accuracy" and len(chosen["history"]) == 4
    best = max(h["value"] for h in chosen["history"])
    assert chosen["best_value"] == best
    assert metrics["accuracy"] == pytest.approx(best)
    assert not any(p.name.startswith(("best-weights", "selection")) for p in (tmp_path / "run").iterdir())


def test_a_guided_efficient_run_trains_on_after_each_evaluation(tiny_model_dir, data, tmp_path) -> None:
    """The evaluation between epochs runs the eager kernel; the efficient capture's must come back
    for the next epoch, or its recorder hears no attention call (the paper recipe's guided runs)."""
    extra = ("--epochs", "2", "--select-best", "--guide", "mdg+pdg")
    assert train(tiny_model_dir, data, tmp_path / "run", *extra) == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["capture"] == "efficient" and len(run["selection"]["history"]) == 2


def test_the_best_epochs_weights_are_put_back(tmp_path) -> None:
    """Scores 0.5, 0.9, 0.3 over three epochs whose weights differ: the second epoch's come back."""
    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.9, 0.3])
    selection = BestCheckpoint(model, lambda scratch: {"accuracy": next(scores)}, "accuracy", None, tmp_path)
    state, control = TrainerState(), TrainerControl()
    weights = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        weights.append(model.weight.clone())
        state.epoch, state.global_step = float(epoch), epoch * 10
        selection.on_epoch_end(None, state, control)
    assert not control.should_training_stop
    record = selection.restore_best()
    assert torch.equal(model.weight, weights[1])
    assert (record["best_epoch"], record["best_step"], record["best_value"]) == (2, 20, 0.9)
    assert list(tmp_path.iterdir()) == []  # the kept weights and state are removed once used


def test_patience_reached_at_the_last_epoch_is_not_an_early_stop(tmp_path) -> None:
    model = torch.nn.Linear(2, 1)
    scores = iter([0.9, 0.5])
    selection = BestCheckpoint(model, lambda scratch: {"accuracy": next(scores)}, "accuracy", 1, tmp_path)
    state, control = TrainerState(), TrainerControl()
    state.max_steps = 20
    for epoch in (1, 2):
        state.epoch, state.global_step = float(epoch), epoch * 10
        selection.on_epoch_end(None, state, control)
    assert not selection.stopped_early and not control.should_training_stop


def test_a_resumed_run_keeps_the_history_up_to_its_checkpoint(tmp_path) -> None:
    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.9])
    first = BestCheckpoint(model, lambda scratch: {"accuracy": next(scores)}, "accuracy", 2, tmp_path)
    state = TrainerState()
    for epoch in (1, 2):
        state.epoch, state.global_step = float(epoch), epoch * 10
        first.on_epoch_end(None, state, TrainerControl())
    again = BestCheckpoint(model, lambda scratch: {"accuracy": 0.1}, "accuracy", 2, tmp_path)
    again.resume(20)
    assert [h["value"] for h in again.history] == [0.5, 0.9]
    control = TrainerControl()
    for epoch in (3, 4):
        state.epoch, state.global_step = float(epoch), epoch * 10
        again.on_epoch_end(None, state, control)
    assert control.should_training_stop and again.stopped_early  # two epochs without improvement


def test_early_stopping_stops_after_the_patience(tiny_model_dir, data, tmp_path) -> None:
    args = ("--epochs", "12", "--select-best", "accuracy", "--early-stopping", "1", "--lr", "1e-9")
    assert train(tiny_model_dir, data, tmp_path / "run", *args) == 0
    chosen = json.loads((tmp_path / "run" / "run.json").read_text())["selection"]
    # with a learning rate this small nothing improves after the first epoch
    assert chosen["stopped_early"] and len(chosen["history"]) == 2 and chosen["best_epoch"] == 1


def test_without_selection_the_last_epoch_is_kept(tiny_model_dir, data, tmp_path) -> None:
    assert train(tiny_model_dir, data, tmp_path / "run", "--epochs", "1") == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["selection"] is None


def options(*argv: str) -> dict:
    args = build_parser().parse_args(["train", "--train", "t.jsonl", "--output-dir", "o", *argv])
    return recipe_settings(args)


def test_the_paper_recipe_and_flags_that_override_it() -> None:
    paper = options("--recipe", "paper")
    assert {k: paper[k] for k in ("batch_size", "lr", "weight_decay", "warmup_ratio", "max_length")} == {
        "batch_size": 64,
        "lr": 1e-5,
        "weight_decay": 0.0,
        "warmup_ratio": 0.0,
        "max_length": 256,
    }
    assert paper["lr_scheduler"] == "constant" and paper["epochs"] == 20.0
    assert paper["select_metric"] == "accuracy"
    assert options("--recipe", "paper", "--task", "ranking")["epochs"] == 5.0
    mine = options("--recipe", "paper", "--lr", "3e-5", "--select-best", "last")
    assert mine["lr"] == 3e-5 and mine["select_metric"] is None
    default = options()
    assert (default["epochs"], default["lr"], default["select_metric"]) == (3.0, 5e-5, None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--early-stopping", "2"], "--early-stopping needs --select-best"),
        (["--select-best", "bleu"], "--select-best bleu: the classification task chooses by one of"),
        (["--select-best", "--early-stopping", "0"], "--early-stopping must be at least 1"),
        (["--select-best"], "--select-best needs dev data"),
    ],
)
def test_selection_flags_that_cannot_work(argv, expected, tiny_model_dir, tmp_path, capsys) -> None:
    train_file = tmp_path / "t.jsonl"
    write_jsonl(train_file, make_dataset(8, seed=1))
    code = main(["train", "--model", tiny_model_dir, "--train", str(train_file)]
                + (["--dev", str(train_file)] if argv != ["--select-best"] else [])
                + ["--output-dir", str(tmp_path / "o"), *argv])  # fmt: skip
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
