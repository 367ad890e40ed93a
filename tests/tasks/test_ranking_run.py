"""Guided ranking runs end to end on a tiny model, through the command line, for both losses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ir_measures
import pytest
from transformers import TrainerCallback

import attnguide.training.pipeline as training
from attnguide.cli import main
from attnguide.tasks.ranking.data import read_ranking
from attnguide.tasks.ranking.ranking_metrics import MEASURES, ranking_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "ranking"
TREC_FILES = ["--queries", str(FIXTURES / "queries.tsv"), "--docs", str(FIXTURES / "docs.tsv")]


@pytest.fixture(scope="module")
def trecqa_slices(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """The first 3 questions of train (120 rows) and of dev (80 rows), as shipped (CRLF, quoted)."""
    folder = tmp_path_factory.mktemp("trecqa")
    for name, rows in (("train.csv", 121), ("dev.csv", 81)):
        lines = (shared_data / "trecqa" / name).read_bytes().split(b"\r\n")
        (folder / name).write_bytes(b"\r\n".join(lines[:rows]) + b"\r\n")
    return folder / "train.csv", folder / "dev.csv"


def read_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for row in ir_measures.read_trec_run(str(path)):
        run.setdefault(row.query_id, {})[row.doc_id] = row.score
    return run


@pytest.mark.parametrize("loss", ["pointwise", "listwise"])
def test_guided_ranking_run_end_to_end(tiny_model_dir, trecqa_slices, tmp_path, loss) -> None:
    train, dev = trecqa_slices
    out = tmp_path / "run"
    argv = ["-q", "train", "--task", "ranking", "--ranking-loss", loss, "--negatives", "3"]
    argv += ["--model", tiny_model_dir, "--train", str(train), "--dev", str(dev), "--guide", "mdg+pdg"]
    argv += ["--mdg-weight", "0.5", "--pdg-weight", "0.5", "--epochs", "1", "--batch-size", "8"]
    argv += ["--max-length", "48", "--logging-steps", "2", "--seed", "3", "--output-dir", str(out)]
    assert main(argv) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(MEASURES) <= set(metrics)
    assert {"train_task_loss", "train_mdg_loss", "train_pdg_loss", "mdg_loss", "head_similarity"} <= set(
        metrics
    )
    # dev slice: 3 questions, one of them without a correct sentence, left out of the averages
    assert (metrics["queries_evaluated"], metrics["unanswerable_left_out"]) == (2, 1)
    assert metrics["truncated_pairs"] > 0
    # the TREC run file gives the same numbers when re-read by the standard tool
    dev_data = read_ranking(dev)
    rerun = ranking_metrics(dev_data.qrels, read_run(out / "dev.run"))
    assert all(rerun[name] == pytest.approx(metrics[name], abs=1e-6) for name in MEASURES)
    predictions = [json.loads(line) for line in (out / "dev_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 80 and predictions[0]["rank"] == 1

    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "ranking" and run["options"]["ranking_loss"] == loss
    assert run["options"]["guide"]["guides"] == "mdg+pdg" and run["capture"] is not None
    assert run["data"]["train"]["queries"] == 3 and run["data"]["dev"]["unanswerable_queries"] == 1
    assert "ir-measures" in run["versions"]

    # the trained reranker on TREC-style files (the task read from its run.json), all queries averaged
    output = tmp_path / "eval" / "fixture.jsonl"
    argv = ["-q", "eval", "--model", str(out), "--data", str(FIXTURES / "qrels.txt")]
    argv += [*TREC_FILES, "--run", str(FIXTURES / "candidates.run"), "--keep-unanswerable"]
    argv += ["--output", str(output), "--max-length", "48"]
    assert main(argv) == 0
    evaluated = json.loads(output.with_suffix(".metrics.json").read_text())
    assert (evaluated["queries_evaluated"], evaluated["queries_unanswerable"]) == (3, 1)
    lines = output.with_suffix(".run").read_text().splitlines()
    assert len(lines) == 8 and lines[0].split()[1::2] == ["Q0", "1", "attnguide"]


def test_ranking_eval_refuses_a_classifier(tiny_model_dir, tmp_path, capsys) -> None:
    argv = ["eval", "--task", "ranking", "--model", tiny_model_dir, "--data", str(FIXTURES / "qrels.txt")]
    assert main([*argv, *TREC_FILES, "--output", str(tmp_path / "x.jsonl")]) == 2
    assert "a reranker has one output, this model has 2" in capsys.readouterr().err


def test_ranking_flags_are_checked_before_any_work(tmp_path, capsys) -> None:
    argv = ["train", "--task", "ranking", "--train", str(FIXTURES / "cross_genre_ir.csv")]
    assert main([*argv, "--negatives", "0", "--output-dir", str(tmp_path / "r")]) == 2
    assert "--negatives must be at least 1" in capsys.readouterr().err
    assert main([*argv, "--format", "sick", "--output-dir", str(tmp_path / "r")]) == 2
    assert "with --task ranking use --ranking-format" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (["--output", "x.run"], "x.run: the predictions and the TREC run would be the same file"),
        (["--output", "x.jsonl", "--output-run", "out/../x.jsonl"], "the predictions and the TREC run would"),
        (["--output", "x", "--output-run", "x.metrics.json"], "the metrics and the TREC run would"),
        (["--run", "top.run", "--output", "top.jsonl"], "top.run: the input --run and the TREC run would"),
        (["--output", "."], ".: is a directory; expected a file name for the predictions"),
        (
            ["--output", "x", "--output-run", "out"],
            "out: is a directory; expected a file name for the TREC run",
        ),
    ],
)
def test_ranking_eval_refuses_clashing_outputs_before_any_work(
    tmp_path, monkeypatch, capsys, outputs, message
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(FIXTURES / "candidates.run", "top.run")
    Path("out").mkdir()
    argv = ["-q", "eval", "--task", "ranking", "--model", "no-model", "--data", str(FIXTURES / "qrels.txt")]
    assert main([*argv, *TREC_FILES, *outputs]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnguide: error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "top.run"]  # nothing written


class InterruptAtStep(TrainerCallback):
    """Ctrl-C after optimiser step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def interrupt_at(monkeypatch, step: int) -> None:
    route = training.route_logs_to_stderr
    monkeypatch.setattr(
        training,
        "route_logs_to_stderr",
        lambda trainer: (route(trainer), trainer.add_callback(InterruptAtStep(step))),
    )


def pointwise_argv(model: str, data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    argv = ["-q", "train", "--task", "ranking", "--model", model, "--train", str(data[0])]
    argv += ["--dev", str(data[1]), "--guide", "mdg", "--mdg-weight", "0.5", "--epochs", "1"]
    argv += ["--batch-size", "8", "--max-length", "32", "--seed", "3", "--output-dir", str(out)]
    return [*argv, *extra]


def test_interrupted_ranking_run_resumes_to_the_same_metrics(
    tiny_model_dir, trecqa_slices, tmp_path, monkeypatch, capsys
) -> None:
    whole = tmp_path / "whole"
    assert main(pointwise_argv(tiny_model_dir, trecqa_slices, whole)) == 0
    out, partial = tmp_path / "run", tmp_path / ".run.partial"
    argv = pointwise_argv(tiny_model_dir, trecqa_slices, out, "--save-steps", "4")
    with monkeypatch.context() as patch:  # 15 steps: interrupted at step 6, the newest checkpoint is 4
        interrupt_at(patch, 6)
        assert main(argv) == 130
    assert [p.name for p in partial.glob("checkpoint-*")] == ["checkpoint-4"] and not out.exists()
    other = [*argv, "--resume"]
    other[other.index("--seed") + 1] = "4"
    assert main(other) == 2  # other settings: refused, the partial run kept
    assert "seed=3" in capsys.readouterr().err and (partial / "checkpoint-4").is_dir()
    assert main([*argv, "--resume"]) == 0
    assert not partial.exists() and not (out / "settings.json").exists()
    assert not list(out.glob("checkpoint-*")) and (out / "dev.run").is_file()
    assert json.loads((out / "run.json").read_text())["resumed_from"].endswith("checkpoint-4")
    resumed = json.loads((out / "metrics.json").read_text())
    expected = json.loads((whole / "metrics.json").read_text())
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert f"{resumed[key]:.6g}" == f"{value:.6g}", key
    assert main([*argv, "--resume"]) == 0  # a finished run resumes to itself


def test_listwise_run_interrupted_in_its_second_epoch_resumes_to_the_same_metrics(
    tiny_model_dir, trecqa_slices, tmp_path, monkeypatch
) -> None:
    listwise = ("--ranking-loss", "listwise", "--negatives", "3", "--epochs", "2", "--logging-steps", "1")
    whole = tmp_path / "whole"
    assert main(pointwise_argv(tiny_model_dir, trecqa_slices, whole, *listwise)) == 0
    steps = json.loads((whole / "log_history.json").read_text())[-1]["step"]
    per_epoch = steps // 2
    assert per_epoch >= 3
    out = tmp_path / "run"
    argv = pointwise_argv(tiny_model_dir, trecqa_slices, out, *listwise, "--save-steps", str(per_epoch + 1))
    with monkeypatch.context() as patch:  # checkpoint one step into epoch 2, interrupted one step later
        interrupt_at(patch, per_epoch + 2)
        assert main(argv) == 130
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["resumed_from"].endswith(f"checkpoint-{per_epoch + 1}")
    resumed = json.loads((out / "metrics.json").read_text())
    expected = json.loads((whole / "metrics.json").read_text())
    assert resumed.keys() == expected.keys()  # the same negatives in epoch 2, so the same model
    for key, value in expected.items():
        assert f"{resumed[key]:.6g}" == f"{value:.6g}", key


def test_ranking_run_interrupted_before_any_checkpoint_leaves_nothing(
    tiny_model_dir, trecqa_slices, tmp_path, monkeypatch
) -> None:
    interrupt_at(monkeypatch, 2)
    out = tmp_path / "run"
    assert main(pointwise_argv(tiny_model_dir, trecqa_slices, out, "--save-steps", "4")) == 130
    assert not out.exists() and not (tmp_path / ".run.partial").exists()
