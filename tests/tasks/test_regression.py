"""Regression: scored pairs read from SICK, STS-B and generic files, and runs end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnguide.cli import main
from attnguide.errors import DataError
from attnguide.tasks.readers import Columns
from attnguide.tasks.regression.data import read_scored

STSB = (
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane takes off.\tA jet takes off.\t5.000\n"
    "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute.\tA man plays guitar.\t1.500\n"
)


def test_sick_relatedness_as_shipped(shared_data) -> None:
    data = read_scored(shared_data / "sick" / "SICK_trial.txt")
    assert (data.pairs.layout, len(data), data.scores[:2]) == ("sick", 500, [3.6, 3.4])
    assert all(1.0 <= s <= 5.0 for s in data.scores)


def test_stsb_and_generic_files(tmp_path: Path) -> None:
    (tmp_path / "stsb.tsv").write_text(STSB, encoding="utf-8")
    data = read_scored(tmp_path / "stsb.tsv")
    assert (data.pairs.layout, data.scores, data.pairs.text_b[1]) == (
        "glue-stsb",
        [5.0, 1.5],
        "A man plays guitar.",
    )
    (tmp_path / "g.jsonl").write_text('{"a": "x", "b": "y", "sim": 0.25}\n{"a": "x", "b": "z", "sim": 1}\n')
    generic = read_scored(tmp_path / "g.jsonl", columns=Columns(text_a="a", text_b="b", label="sim"))
    assert generic.scores == [0.25, 1.0]
    with pytest.raises(DataError, match=r"name at least the text and label columns \(--text-a and --label\)"):
        read_scored(tmp_path / "g.jsonl", columns=Columns(text_a="a", text_b="b"))


@pytest.mark.parametrize(
    ("score", "label_range", "message"),
    [
        ("high", None, "expected a number as the score, found 'high'"),
        ("7", (1.0, 5.0), "score 7 is outside --label-range 1 5"),
    ],
)
def test_bad_scores_name_the_line(tmp_path: Path, score, label_range, message) -> None:
    (tmp_path / "s.csv").write_text(f"s1,s2,y\nA cat.,A dog.,2\nA cat.,A cow.,{score}\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_scored(
            tmp_path / "s.csv", columns=Columns(text_a="s1", text_b="s2", label="y"), label_range=label_range
        )
    assert caught.value.line == 3 and message in caught.value.message


def test_train_and_eval_a_regressor(tiny_model_dir, tmp_path, capsys) -> None:
    rows = [f"A cat number {i}.,A dog number {i % 4}.,{1 + (i % 5)}" for i in range(24)]
    (tmp_path / "train.csv").write_text("s1,s2,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = [
        "-q",
        "train",
        "--task",
        "regression",
        "--model",
        tiny_model_dir,
        "--train",
        str(tmp_path / "train.csv"),
    ]
    argv += ["--dev", str(tmp_path / "train.csv"), "--text-a", "s1", "--text-b", "s2", "--label", "y"]
    argv += ["--label-range", "1", "5", "--guide", "mdg+pdg", "--epochs", "1", "--batch-size", "8"]
    assert main([*argv, "--max-length", "32", "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"pearson", "spearman", "mse", "mdg_loss", "head_similarity"} <= set(metrics)
    capsys.readouterr()
    evaluated = [
        "-q",
        "eval",
        "--model",
        str(out),
        "--data",
        str(tmp_path / "train.csv"),
        "--max-length",
        "32",
    ]
    evaluated += ["--text-a", "s1", "--text-b", "s2", "--label", "y", "--output", str(tmp_path / "p.jsonl")]
    assert main(evaluated) == 0
    assert json.loads(capsys.readouterr().out)["pearson"] == pytest.approx(metrics["pearson"])
    predictions = [json.loads(line)["prediction"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and len(set(predictions)) > 1
    config = json.loads((out / "config.json").read_text())
    assert (
        config["problem_type"] == "regression" and config["num_labels"] == 1
        if "num_labels" in config
        else True
    )
