"""Issue 27 across the tasks: `train` and `eval` refuse what they cannot use in one line with exit code
2 and leave nothing behind, and take the odd but legitimate input the README promises to take."""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import pytest
from test_bad_input import GOOD, GOOD2, assert_one_line_error, sick

from attnguide.cli import main
from attnguide.errors import DataError
from attnguide.tasks.ranking.cosine_ranking import triplets
from attnguide.tasks.ranking.data import read_answer_selection
from attnguide.tasks.regression.run import regression_metrics
from attnguide.tasks.token_classification.data import read_tagged


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished one-epoch classification run that kept its checkpoint."""
    root = tmp_path_factory.mktemp("classifier")
    train = sick(root, GOOD, GOOD2)
    run = root / "run"
    args = ["-q", "train", "--model", tiny_model_dir, "--train", train, "--epochs", "1", "--keep-checkpoints"]
    assert main([*args, "--output-dir", str(run)]) == 0
    return run


def evaluate(model: str | Path, data: str, output: Path, *more: str) -> int:
    return main(["-q", "eval", "--model", str(model), "--data", data, "--output", str(output), *more])


@pytest.mark.parametrize("task", ["regression", "token-classification", "ranking", "embedding"])
def test_a_run_is_not_evaluated_as_another_task(classifier_run, tmp_path, capsys, task) -> None:
    code = evaluate(classifier_run, sick(tmp_path, GOOD, GOOD2), tmp_path / "p.jsonl", "--task", task)
    assert_one_line_error(
        capsys, code, [str(classifier_run), "trained with --task classification", f"with --task {task}"]
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "sick.txt"]


def test_a_plain_model_is_evaluated_as_the_task_asked(tiny_model_dir, tmp_path) -> None:
    data = sick(tmp_path, GOOD, GOOD2)
    assert evaluate(tiny_model_dir, data, tmp_path / "p.jsonl", "--task", "regression") == 0
    assert set(json.loads((tmp_path / "p.metrics.json").read_text())) >= {"pearson", "mse"}


def test_an_unfinished_run_is_refused_but_its_checkpoint_is_evaluated(
    classifier_run, tmp_path, capsys
) -> None:
    data = sick(tmp_path, GOOD, GOOD2)
    for name, drop in ((".run.partial", None), ("renamed", "metrics.json")):
        unfinished = tmp_path / name
        shutil.copytree(classifier_run, unfinished)
        if drop:
            (unfinished / drop).unlink()
        code = evaluate(unfinished, data, tmp_path / "p.jsonl")
        checkpoint = next(unfinished.glob("checkpoint-*"))
        assert_one_line_error(capsys, code, [str(unfinished), "unfinished training run", str(checkpoint)])
        assert not (tmp_path / "p.jsonl").exists()
    assert evaluate(checkpoint, data, tmp_path / "p.jsonl") == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2


def test_an_output_that_cannot_be_created(tiny_model_dir, classifier_run, tmp_path, capsys) -> None:
    train = sick(tmp_path, GOOD, GOOD2)
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    args = ["train", "--model", tiny_model_dir, "--train", train, "--epochs", "1", "--output-dir"]
    assert_one_line_error(capsys, main([*args, str(blocker / "out")]), ["afile is a file, not a directory"])
    assert_one_line_error(capsys, main([*args, str(blocker)]), ["exists and is not a directory"])
    code = evaluate(classifier_run, train, blocker / "sub" / "p.jsonl")
    assert_one_line_error(capsys, code, ["cannot write the predictions", "afile is a file"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "sick.txt"]
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only directory")
def test_an_output_directory_without_write_permission(tiny_model_dir, tmp_path, capsys) -> None:
    train = sick(tmp_path, GOOD, GOOD2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code = main(["train", "--model", tiny_model_dir, "--train", train, "--output-dir", str(locked / "o")])
        assert_one_line_error(capsys, code, ["no permission to write in", "locked"])
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_a_file_in_the_place_of_the_unfinished_run(tiny_model_dir, tmp_path, capsys) -> None:
    train = sick(tmp_path, GOOD, GOOD2)
    (tmp_path / ".out.partial").write_text("mine")
    for resume in ([], ["--resume"]):
        args = ["train", "--model", tiny_model_dir, "--train", train, "--output-dir", str(tmp_path / "out")]
        assert_one_line_error(
            capsys, main([*args, *resume]), [".out.partial: a file where the unfinished run"]
        )
    assert (tmp_path / ".out.partial").read_text() == "mine" and not (tmp_path / "out").exists()


def test_overwrite_never_deletes_the_training_data(tiny_model_dir, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    train = sick(data, GOOD, GOOD2)
    args = ["train", "--model", tiny_model_dir, "--train", train, "--output-dir", str(data), "--overwrite"]
    assert_one_line_error(capsys, main(args), ["data: holds --train", "name another --output-dir"])
    assert Path(train).is_file()


def test_words_without_a_sub_token_are_tagged_o_and_still_count(tiny_model_dir, tmp_path) -> None:
    text = (
        "Germline\tO\n\x07\tB-Disease\ncancer\tB-Disease\n\n"  # a control character: no sub-token
        "APC\tB-Disease\n\u200b\tI-Disease\nis\tO\n\n"  # a zero-width space: none either
        "\u200b\tB-Disease\n\n"  # a sentence of such words only
    )
    train = tmp_path / "t.tsv"
    train.write_text(text, encoding="utf-8")
    run = tmp_path / "run"
    base = ["-q", "--task", "token-classification"]
    args = ["-q", "train", *base[1:], "--model", tiny_model_dir, "--train", str(train), "--dev", str(train)]
    assert main([*args, "--epochs", "1", "--output-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["sentences"], metrics["words"], metrics["words_without_subwords"]) == (3, 7, 3)
    assert metrics["per_type"]["Disease"]["support"] == 4  # the gold mentions of those words count
    output = tmp_path / "predicted.tsv"
    assert evaluate(run, str(train), output) == 0
    predicted = output.read_text(encoding="utf-8").split("\n")
    assert [line.split("\t")[0] for line in predicted] == [line.split("\t")[0] for line in text.split("\n")]
    assert {predicted[i] for i in (1, 5, 8)} == {"\x07\tO", "\u200b\tO"}
    assert json.loads((tmp_path / "predicted.metrics.json").read_text())["words_without_subwords"] == 3


def test_only_a_newline_ends_a_line_of_tagged_data(tmp_path) -> None:
    iob = tmp_path / "u.tsv"
    iob.write_text("a\u2028b\tO\nc\tB-X\n\nd\x85e\tO\nf\tQ\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"u\.tsv:5: expected a tag"):
        read_tagged(iob)
    iob.write_text("a\u2028b\tO\nc\tB-X\n\nd\x85e\tO\n", encoding="utf-8")
    data = read_tagged(iob)
    assert data.words == [["a\u2028b", "c"], ["d\x85e"]] and data.lines == [[1, 2], [4]]
    conll = tmp_path / "u.conll"
    conll.write_text("a\u2028b NN O\nc\x85d NN B-X\n", encoding="utf-8")
    assert read_tagged(conll).words == [["a\u2028b", "c\x85d"]]


def test_bi_encoder_rows_without_any_irrelevant_candidate(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("qtext,label,atext\nq,1,a\nq,1,b\np,1,c\n", encoding="utf-8")
    rows = triplets(read_answer_selection(path), seed=0)
    assert rows.column_names == ["anchor", "positive"] and rows["positive"] == ["a", "b", "c"]


def test_constant_predictions_give_nan_correlations_and_one_warning(caplog) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning reaches the user
        with caplog.at_level(logging.WARNING, logger="attnguide"):
            metrics = regression_metrics([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert metrics["pearson"] != metrics["pearson"] and metrics["mse"] == pytest.approx(
        (0.25 + 2.25 + 6.25) / 3
    )
    assert "every prediction is the same score" in caplog.text


def test_eval_refuses_scores_it_cannot_correlate_and_an_infinite_range(
    tiny_model_dir, tmp_path, capsys
) -> None:
    same = sick(tmp_path, GOOD, GOOD.replace("1", "2", 1), name="same.txt")
    code = evaluate(tiny_model_dir, same, tmp_path / "p.jsonl", "--task", "regression")
    assert_one_line_error(capsys, code, ["same.txt", "every score is 4.5"])
    code = evaluate(
        tiny_model_dir, same, tmp_path / "p.jsonl", "--task", "regression", "--label-range", "0", "inf"
    )
    assert_one_line_error(capsys, code, ["--label-range 0 inf", "finite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.txt"]


def test_bom_and_crlf_data_trains(tiny_model_dir, tmp_path) -> None:
    path = tmp_path / "b.txt"
    header = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
    path.write_bytes(("\ufeff" + header + GOOD + "\n" + GOOD2 + "\n").replace("\n", "\r\n").encode())
    run = tmp_path / "run"
    args = ["-q", "train", "--model", tiny_model_dir, "--train", str(path), "--epochs", "1"]
    assert main([*args, "--output-dir", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["labels"] == ["ENTAILMENT", "NEUTRAL"]
