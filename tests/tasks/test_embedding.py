"""The embedding task and bi-encoder ranking: sentence-transformers models trained through attnguide's
pipeline with the library's trainer, their zero-shot baselines, and CrossEncoder loading of a reranker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from attnguide.cli import main
from attnguide.errors import DataError
from attnguide.tasks.embedding.data import TextRows, read_embedding_data
from attnguide.tasks.ranking.cosine_ranking import triplets
from attnguide.tasks.ranking.data import read_ranking

SCORED = (
    "s1,s2,y\n" + "\n".join(f"A cat number {i}.,A dog number {i % 4}.,{1 + i % 5}" for i in range(16)) + "\n"
)
QA = (
    "qtext,label,atext\n"
    + "\n".join(
        f"what is item {q}?,{int(a == q % 3)},item {q} is thing {a} of the list."
        for q in range(5)
        for a in range(3)
    )
    + "\n"
)
COLUMNS = ["--text-a", "s1", "--text-b", "s2", "--label", "y"]


@pytest.fixture(scope="module")
def bi_encoder_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny BERT saved as a sentence-transformers model (mean pooling)."""
    torch.manual_seed(0)
    transformer = Transformer(tiny_model_dir, max_seq_length=48)
    path = tmp_path_factory.mktemp("tiny-st") / "model"
    SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())]).save(str(path))
    return str(path)


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


def test_training_rows_of_every_kind(tmp_path, shared_data) -> None:
    rows = read_embedding_data(
        write(tmp_path, "t.jsonl", '{"anchor": "a", "positive": "b", "negative": "c"}\n')
    )
    assert isinstance(rows, TextRows) and rows.columns == {
        "anchor": ["a"],
        "positive": ["b"],
        "negative": ["c"],
    }
    entail = read_embedding_data(shared_data / "sick" / "SICK_trial.txt", positive_label="ENTAILMENT")
    assert isinstance(entail, TextRows) and len(entail) == sum(
        line.rstrip().endswith("ENTAILMENT") for line in (shared_data / "sick" / "SICK_trial.txt").open()
    )
    with pytest.raises(DataError, match="no pair is labelled 'YES'"):
        read_embedding_data(shared_data / "sick" / "SICK_trial.txt", positive_label="YES")


def test_an_embedding_run_trains_evaluates_and_loads_as_a_sentence_transformer(
    bi_encoder_dir, tmp_path, capsys
) -> None:
    data = write(tmp_path, "scores.csv", SCORED)
    out = tmp_path / "run"
    argv = [
        "-q",
        "train",
        "--task",
        "embedding",
        "--model",
        bi_encoder_dir,
        "--train",
        data,
        "--dev",
        data,
        *COLUMNS,
    ]
    argv += ["--label-range", "1", "5", "--guide", "mdg+pdg", "--epochs", "1", "--batch-size", "8"]
    assert main([*argv, "--max-length", "32", "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"spearman", "pearson", "zero_shot_spearman", "mdg_loss", "head_similarity"} <= set(metrics)
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "embedding" and run["loss"] == "cosent" and run["capture"] == "efficient"
    assert SentenceTransformer(str(out)).encode(["A cat."]).shape == (1, 32)
    capsys.readouterr()
    evaluated = ["-q", "eval", "--model", str(out), "--data", data, *COLUMNS, "--max-length", "32"]
    assert main([*evaluated, "--output", str(tmp_path / "p.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["spearman"] == pytest.approx(metrics["spearman"], abs=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--label-range", "1", "3"], "score 4 is outside --label-range 1 3"),
        (["--embedding-loss", "mnrl"], "--embedding-loss mnrl needs (anchor, positive) rows"),
    ],
)
def test_bad_embedding_input_is_one_line(bi_encoder_dir, tmp_path, capsys, extra, message) -> None:
    data = write(tmp_path, "scores.csv", SCORED)
    out = tmp_path / "run"
    argv = ["train", "--task", "embedding", "--model", bi_encoder_dir, "--train", data, *COLUMNS, *extra]
    assert main([*argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_embedding_needs_a_sentence_transformers_model(tiny_model_dir, tmp_path, capsys) -> None:
    data = write(tmp_path, "scores.csv", SCORED)
    argv = ["train", "--task", "embedding", "--model", tiny_model_dir, "--train", data, *COLUMNS]
    assert main([*argv, "--output-dir", str(tmp_path / "run")]) == 2
    assert "not a sentence-transformers model (no modules.json)" in capsys.readouterr().err


def test_triplets_take_the_querys_own_wrong_sentences(tmp_path) -> None:
    data = read_ranking(write(tmp_path, "qa.csv", QA))
    rows = triplets(data, seed=0)
    assert len(rows) == 5
    for row in rows:
        q = row["anchor"].split()[-1].rstrip("?")
        assert row["positive"].startswith(f"item {q} ") and row["negative"].startswith(f"item {q} ")
        assert row["negative"] != row["positive"]


def test_bi_encoder_ranking_and_zero_shot_figures(bi_encoder_dir, tmp_path) -> None:
    data = write(tmp_path, "qa.csv", QA)
    out = tmp_path / "bi"
    argv = ["-q", "train", "--task", "ranking", "--encoder", "bi", "--model", bi_encoder_dir, "--train", data]
    argv += ["--dev", data, "--guide", "mdg+pdg", "--epochs", "1", "--batch-size", "4", "--max-length", "32"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"map", "mrr", "zero_shot_map", "zero_shot_mrr", "mdg_loss"} <= set(metrics)
    assert (out / "dev.run").is_file() and (out / "modules.json").is_file()
    cross = tmp_path / "cross"
    argv = ["-q", "train", "--task", "ranking", "--model", bi_encoder_dir, "--train", data, "--dev", data]
    assert main([*argv, "--epochs", "1", "--max-length", "32", "--output-dir", str(cross)]) == 0
    crossed = json.loads((cross / "metrics.json").read_text())
    assert crossed["zero_shot_map"] == metrics["zero_shot_map"]  # the same starting model, measured alike


def test_a_reranker_loads_as_a_cross_encoder_and_scores_as_eval_does(tiny_model_dir, tmp_path) -> None:
    data = write(tmp_path, "qa.csv", QA)
    out = tmp_path / "run"
    argv = ["-q", "train", "--task", "ranking", "--model", tiny_model_dir, "--train", data, "--dev", data]
    assert main([*argv, "--epochs", "1", "--max-length", "32", "--output-dir", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "dev_predictions.jsonl").read_text().splitlines()]
    model = CrossEncoder(str(out), max_length=32)
    scores = model.predict([(r["query"], r["document"]) for r in rows], activation_fn=torch.nn.Identity())
    assert [round(float(s), 4) for s in scores] == [round(r["score"], 4) for r in rows]
    shutil.rmtree(out)
