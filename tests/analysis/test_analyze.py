"""``attnguide analyze`` end to end on tiny models: the JSON, the report, every figure, bertviz, errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from attnguide.cli import main
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_json, write_jsonl
from attnguide.guiding.registry import GUIDES

FIGURES = ("profiles.png", "similarity.png", "layers.png", "training.png")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("analyze-data") / "dev.jsonl"
    write_jsonl(path, make_dataset(12, seed=5))
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir) -> str:
    """A tiny model laid out like a run of ``attnguide train``, with a guided run's log history."""
    path = tmp_path_factory.mktemp("analyze-run") / "guided"
    shutil.copytree(tiny_model_dir, path)
    history = [
        {
            "step": s,
            "loss": 1.2 - s / 100,
            "task_loss": 1.1 - s / 100,
            "mdg_loss": 2.07,
            "pdg_loss": 3.5 - s / 50,
        }
        for s in (2, 4, 6)
    ]
    write_json(
        path / "log_history.json", [*history, {"step": 6, "eval_loss": 1.05}, {"step": 6, "train_loss": 1.0}]
    )
    write_json(path / "run.json", {"data": {"train": {"source": "/somewhere/train.jsonl"}}})
    write_json(path / "metrics.json", {})  # a finished run
    return str(path)


def analyze(tiny_model_dir: str, data_file: str, out: Path, *extra: str) -> int:
    argv = ["-q", "analyze", "--model", tiny_model_dir, "--data", data_file, "--limit", "10"]
    return main([*argv, "--max-length", "40", "--batch-size", "4", "--output-dir", str(out), *extra])


def test_analyze_writes_json_report_and_figures(tiny_model_dir, run_dir, data_file, tmp_path, capsys) -> None:
    out = tmp_path / "analysis"
    assert analyze(tiny_model_dir, data_file, out, "--compare", run_dir, "--names", "before", "after") == 0
    assert "| diagnostic | before | after |" in capsys.readouterr().out

    for name in FIGURES:
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100, name
    report = (out / "report.md").read_text()
    assert all(f"]({name})" in report for name in FIGURES)
    assert "| head_similarity |" in report and "| layer | before | after |" in report
    assert all(f"| {name}_loss |" in report and f"### {name}_loss" in report for name in GUIDES)

    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert diagnostics["data"]["examples"] == 10 and diagnostics["data"]["available"] == 12
    assert [m["name"] for m in diagnostics["models"]] == ["before", "after"]
    before, after = diagnostics["models"]
    assert before["summary"] == after["summary"]  # same weights: the run is a copy of the tiny model
    assert len(before["per_head"]["entropy"]) == 8 and len(before["similarity"]) == 8
    assert not list(tmp_path.glob(".*partial"))


def test_no_training_figure_without_a_run(tiny_model_dir, data_file, tmp_path) -> None:
    out = tmp_path / "analysis"
    assert analyze(tiny_model_dir, data_file, out) == 0
    assert sorted(p.name for p in out.glob("*.png")) == sorted(FIGURES[:3])
    assert "training.png" not in (out / "report.md").read_text()


def test_bertviz_missing_is_a_clear_error(tiny_model_dir, data_file, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "bertviz", None)  # as if it were not installed
    out = tmp_path / "analysis"
    assert analyze(tiny_model_dir, data_file, out, "--bertviz", str(tmp_path / "view.html")) == 2
    assert "pip install 'attnguide[viz]'" in capsys.readouterr().err
    assert not out.exists()


def test_bertviz_head_view(tiny_model_dir, data_file, tmp_path) -> None:
    pytest.importorskip("bertviz")
    view = tmp_path / "view.html"
    assert analyze(tiny_model_dir, data_file, tmp_path / "analysis", "--bertviz", str(view)) == 0
    assert "[CLS]" in view.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--names", "one", "two"], "--names needs 1 distinct names"),
        (["--example", "10"], "--example 10: only 10 examples"),
        (["--limit", "-1"], "--limit must be at least 0"),
    ],
)
def test_bad_options_are_one_line_errors(tiny_model_dir, data_file, tmp_path, capsys, extra, message) -> None:
    assert analyze(tiny_model_dir, data_file, tmp_path / "analysis", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_ranking_run_is_analysed_on_ranking_data(tiny_model_dir, tmp_path) -> None:
    """Without --task, analyze reads the data as the task the model was trained for: here ranking
    (query, sentence) pairs, tokenised as the reranker saw them."""
    model = tmp_path / "reranker"
    shutil.copytree(tiny_model_dir, model)
    write_json(model / "run.json", {"task": "ranking", "data": {}})
    write_json(model / "metrics.json", {})
    data = tmp_path / "qa.csv"
    rows = [f"what is item {q}?,{int(a == q)},item {q} is thing {a}." for q in range(3) for a in range(3)]
    data.write_text("qtext,label,atext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "analysis"
    assert analyze(str(model), str(data), out, "--limit", "5") == 0
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert diagnostics["data"] | {"source": None} == {
        "source": None,
        "layout": "answer-selection",
        "examples": 5,
        "available": 9,
        "max_length": 40,
    }
    assert diagnostics["example"] == {"index": 0, "text_a": "what is item 0?", "text_b": "item 0 is thing 0."}
    assert (
        analyze(str(model), str(data), tmp_path / "again", "--format", "sick") == 2
    )  # a classification flag
