"""Regression: scored pairs read from SICK, STS-B and generic files, and runs end to end on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from attnguide.cli import main
from attnguide.errors import DataError
from attnguide.tasks.pairs.scored_pairs import read_scored
from attnguide.tasks.readers import Columns

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


def test_a_regressor_trained_with_binary_cross_entropy(tiny_model_dir, tmp_path, capsys) -> None:
    """``--regression-loss bce``: the output is the logit of the scaled score, so every prediction
    lies in the range, ``eval`` scores as the run did, and sentence-transformers' ``CrossEncoder``
    (sigmoid on one output) predicts the same scores scaled to 0-1."""
    from sentence_transformers import CrossEncoder

    rows = [(f"A cat number {i}.", f"A dog number {i % 4}.", 1 + (i % 5)) for i in range(24)]
    data = tmp_path / "train.csv"
    data.write_text("s1,s2,y\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows), encoding="utf-8")
    columns = ["--text-a", "s1", "--text-b", "s2", "--label", "y", "--max-length", "32"]
    argv = ["-q", "train", "--task", "regression", "--model", tiny_model_dir, "--train", str(data)]
    argv += ["--dev", str(data), *columns, "--epochs", "1", "--batch-size", "8", "--lr", "1e-3"]
    out = tmp_path / "run"
    assert main([*argv, "--regression-loss", "bce", "--label-range", "1", "5", "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    predictions = tmp_path / "p.jsonl"
    assert (
        main(["-q", "eval", "--model", str(out), "--data", str(data), *columns, "--output", str(predictions)])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["pearson"] == pytest.approx(metrics["pearson"])
    predicted = [json.loads(line)["prediction"] for line in predictions.read_text().splitlines()]
    assert all(1 < p < 5 for p in predicted) and len(set(predicted)) > 1
    scaled = CrossEncoder(str(out), max_length=32).predict([(a, b) for a, b, _ in rows])
    assert [(p - 1) / 4 for p in predicted] == pytest.approx(scaled.tolist(), abs=1e-5)


def test_bce_is_the_default_and_takes_its_range_from_the_training_scores(
    tiny_model_dir, tmp_path, capsys, caplog
) -> None:
    """Without --label-range the training scores' lowest and highest value scale them (recorded in
    run.json); dev and eval scores outside that range are scaled by it, not refused."""
    train = tmp_path / "train.csv"
    train.write_text("s1,s2,y\n" + "".join(f"A cat {i}.,A dog {i % 3}.,{2 + i % 3}\n" for i in range(12)))
    dev = tmp_path / "dev.csv"
    dev.write_text("s1,s2,y\nA cat.,A dog.,1\nA cat.,A cow.,5\nA cow.,A cow.,3\n", encoding="utf-8")
    columns = ["--text-a", "s1", "--text-b", "s2", "--label", "y", "--max-length", "32"]
    out = tmp_path / "run"
    argv = ["-q", "train", "--task", "regression", "--model", tiny_model_dir, "--train", str(train)]
    argv += ["--dev", str(dev), *columns, "--epochs", "1", "--batch-size", "4", "--output-dir", str(out)]
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["regression_loss"] == "bce" and run["options"]["label_range"] == [2.0, 4.0]
    assert run["label_range_from"] == "training data"
    assert "zero_shot_pearson" not in json.loads((out / "metrics.json").read_text())  # not an ST model
    capsys.readouterr()
    evaluated = ["-q", "eval", "--model", str(out), "--data", str(dev), *columns]
    assert main([*evaluated, "--output", str(tmp_path / "p.jsonl")]) == 0
    assert "pearson" in json.loads(capsys.readouterr().out)
    assert "2 scores outside 2 to 4, the training scores' range" in caplog.text


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_the_regression_loss_reaches_the_trainer(tiny_model_dir, tmp_path, loss) -> None:
    import torch
    from transformers import AutoTokenizer
    from transformers.modeling_outputs import SequenceClassifierOutput

    from attnguide.tasks.regression.run import RegressionRun
    from attnguide.tasks.regression.task import RegressionOptions

    (tmp_path / "t.csv").write_text("s1,s2,y\nA cat.,A dog.,2\nA cat.,A cow.,4\n", encoding="utf-8")
    options = RegressionOptions(
        output_dir=str(tmp_path / "run"),
        train=str(tmp_path / "t.csv"),
        columns=Columns(text_a="s1", text_b="s2", label="y"),
        label_range=(1.0, 5.0),
        regression_loss=loss,
    )
    run = RegressionRun(options)
    run.read()
    setup = run.encode(AutoTokenizer.from_pretrained(tiny_model_dir), {"score": 0})
    assert setup.dataset["labels"] == [0.25, 0.75]
    if loss == "mse":
        assert setup.compute_loss is None  # the model's own: transformers' regression head, MSE
    else:
        outputs = SequenceClassifierOutput(logits=torch.zeros(2, 1))
        assert float(setup.compute_loss(outputs, torch.tensor([0.25, 0.75]))) == pytest.approx(math.log(2))


def test_a_sentence_transformers_start_reports_its_zero_shot_figures(minilm_path, tmp_path) -> None:
    """The packaged MiniLM is a sentence-transformers model: its untrained cosine similarities on dev
    are reported beside the fine-tuned scores, as the embedding and ranking tasks do."""
    rows = [
        ("A man plays a guitar.", "A man plays music.", 4.5),
        ("A dog runs.", "A cat sleeps.", 1.5),
        ("A girl reads.", "A child reads a book.", 4.0),
        ("Two men cook.", "Nobody cooks.", 2.0),
    ]
    data = tmp_path / "d.csv"
    data.write_text("s1,s2,y\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["-q", "train", "--task", "regression", "--model", minilm_path, "--train", str(data), "--dev"]
    argv += [str(data), "--text-a", "s1", "--text-b", "s2", "--label", "y", "--epochs", "1"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"zero_shot_pearson", "zero_shot_spearman"} <= set(metrics)
    # a related pair gets the higher cosine: the untrained model already orders these four pairs well
    assert metrics["zero_shot_spearman"] > 0.5
