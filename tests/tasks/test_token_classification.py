"""Token classification: the tagged-sentence readers, sub-word windows, runs end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnguide.cli import main
from attnguide.errors import DataError
from attnguide.models import load_tokenizer
from attnguide.tasks.readers import Columns
from attnguide.tasks.token_classification.data import load_hf_tagged, read_tagged, tag_list
from attnguide.tasks.token_classification.encoding import IGNORED, encode_windows, words_from_windows
from attnguide.tasks.token_classification.run import entity_metrics

IOB = (
    "Germline\tO\nmutations\tO\nin\tO\nBRCA1\tB-Disease\ncancer\tI-Disease\n.\tO\n"
    "\nAPC\tB-Disease\nis\tO\nmutated\tO\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_ncbi_disease_as_shipped(shared_data) -> None:
    data = read_tagged(shared_data / "ncbi-disease" / "devel.tsv")
    assert (data.layout, len(data)) == ("iob", 923)
    assert data.words[0][:2] == ["BRCA1", "is"] and data.lines[1][0] == 12  # line numbers kept
    assert tag_list(data) == ["O", "B-Disease", "I-Disease"]


def test_conll_jsonl_and_a_dataset_read_the_same_sentences(tmp_path) -> None:
    conll = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    data = read_tagged(write(tmp_path, "c.txt", conll))
    assert (data.layout, data.words, data.tags) == (
        "conll",
        [["EU", "rejects"], ["Peter"]],
        [["B-ORG", "O"], ["B-PER"]],
    )
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}, {"tokens": ["Peter"], "tags": ["B-PER"]}]
    jsonl = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert read_tagged(jsonl).tags == data.tags
    renamed = write(tmp_path, "e.jsonl", json.dumps({"words": ["EU"], "ner": ["B-ORG"]}) + "\n")
    assert read_tagged(renamed, columns=Columns(text_a="words", label="ner")).words == [["EU"]]
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-ORG", "B-PER"])),
        }
    )
    datasets.Dataset.from_dict(
        {"tokens": [["EU", "rejects"], ["Peter"]], "ner_tags": [[1, 0], [2]]}, features
    ).save_to_disk(tmp_path / "hf")
    assert load_hf_tagged(tmp_path / "hf").tags == data.tags


@pytest.mark.parametrize(
    ("name", "text", "message", "line"),
    [
        ("a.tsv", "a\tO\nb\tO\tx\n", "expected 2 tab-separated columns (word ... tag), found 3", 2),
        ("b.tsv", "a\tO\n \tO\n", "empty word in the first column", 2),
        (
            "c.tsv",
            "a\tO\nb\tDisease\n",
            "expected a tag O, B-TYPE or I-TYPE in the last column, found 'Disease'",
            2,
        ),
        (
            "d.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [], "tags": []}\n',
            "a sentence with no tokens",
            2,
        ),
        ("e.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', "2 tokens but 1 tags", 1),
    ],
)
def test_malformed_lines_are_named(tmp_path, name, text, message, line) -> None:
    with pytest.raises(DataError) as caught:
        read_tagged(write(tmp_path, name, text))
    assert caught.value.line == line and message in caught.value.message


def test_windows_label_first_sub_tokens_and_give_every_word_back(tiny_model_dir, tmp_path) -> None:
    """A 40-word sentence in windows of 16 sub-tokens: every word is labelled once, on its first
    sub-token, in the window where it has the most context; mapping the labels back gives the tags."""
    words = [f"w{i}" if i % 3 else "unbelievably" for i in range(40)]
    tags = ["B-X" if i % 5 == 0 else "O" for i in range(40)]
    data = read_tagged(write(tmp_path, "long.jsonl", json.dumps({"tokens": words, "tags": tags}) + "\n"))
    tokenizer = load_tokenizer(tiny_model_dir)
    label2id = {"O": 0, "B-X": 1}
    windows = encode_windows(data, tokenizer, 16, label2id, stride=4)
    assert windows.split_sentences == 1 and len(windows.dataset) > 3 and windows.words_without_subwords == 0
    labelled = [p for where in windows.positions for p in where.values()]
    assert sorted(labelled) == [(0, w) for w in range(40)]  # each word exactly once
    for row, where in zip(windows.dataset, windows.positions, strict=True):
        ids = row["input_ids"]
        assert [i for i, label in enumerate(row["labels"]) if label != IGNORED] == sorted(where)
        assert all(not tokenizer.convert_ids_to_tokens(ids[p]).startswith("##") for p in where)
    predicted = [[max(label, 0) for label in row["labels"]] for row in windows.dataset]
    assert words_from_windows(windows, data, predicted, {0: "O", 1: "B-X"}) == data.tags


def test_entity_metrics_count_whole_mentions() -> None:
    gold = [["B-D", "I-D", "O", "B-D"]]
    metrics = entity_metrics(gold, [["B-D", "O", "O", "B-D"]])  # one of two mentions has the wrong span
    assert (metrics["precision"], metrics["recall"], metrics["accuracy"]) == (0.5, 0.5, 0.75)
    assert metrics["per_type"]["D"]["support"] == 2


def test_train_eval_and_analyze_a_tagger(tiny_model_dir, tmp_path, capsys) -> None:
    train = write(tmp_path, "train.tsv", IOB * 4)
    dev = write(tmp_path, "dev.tsv", IOB)
    out = tmp_path / "run"
    argv = ["-q", "train", "--task", "token-classification", "--model", tiny_model_dir, "--train", str(train)]
    argv += [
        "--dev",
        str(dev),
        "--guide",
        "mdg+pdg",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "8",
    ]
    assert main([*argv, "--stride", "2", "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"precision", "recall", "f1", "accuracy", "per_type", "mdg_loss", "head_similarity"} <= set(
        metrics
    )
    assert metrics["sentences_split"] == 1 and metrics["words"] == 9  # the 6-word sentence needs 2 windows
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "token-classification" and run["labels"] == ["O", "B-Disease", "I-Disease"]
    capsys.readouterr()
    predictions = tmp_path / "dev.out.tsv"
    assert (
        main(
            [
                "-q",
                "eval",
                "--model",
                str(out),
                "--data",
                str(dev),
                "--max-length",
                "8",
                "--stride",
                "2",
                "--output",
                str(predictions),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["f1"] == metrics["f1"]  # eval takes the task from run.json
    written = predictions.read_text().splitlines()
    assert [line.split("\t")[0] for line in written] == [line.split("\t")[0] for line in IOB.splitlines()]
    assert all(line.split("\t")[1] in ("O", "B-Disease", "I-Disease") for line in written if line)
    assert (
        main(["-q", "analyze", "--model", str(out), "--data", str(dev), "--output-dir", str(tmp_path / "a")])
        == 0
    )
    assert json.loads((tmp_path / "a" / "diagnostics.json").read_text())["data"]["layout"] == "iob"


def test_a_tag_training_never_saw_is_refused_at_eval(tiny_model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    train = write(tmp_path, "train.tsv", IOB)
    assert (
        main(
            [
                "-q",
                "train",
                "--task",
                "token-classification",
                "--model",
                tiny_model_dir,
                "--train",
                str(train),
                "--epochs",
                "1",
                "--max-length",
                "16",
                "--stride",
                "2",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    dev = write(tmp_path, "dev.tsv", "APC\tB-Gene\n")
    assert (
        main(["-q", "eval", "--model", str(out), "--data", str(dev), "--output", str(tmp_path / "p.tsv")])
        == 2
    )
    err = capsys.readouterr().err
    assert "dev.tsv:1: tag 'B-Gene' does not occur in the training data" in err and err.count("\n") == 1
    assert not (tmp_path / "p.tsv").exists()
