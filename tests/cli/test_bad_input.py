"""Every kind of bad input ends with exit code 2, one line on stderr, and nothing left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from attnguide.cli import main
from attnguide.files import write_jsonl

SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"


def sick(tmp: Path, *rows: str, name: str = "sick.txt") -> str:
    path = tmp / name
    path.write_text(SICK_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return str(path)


def nli(tmp: Path, rows: list[dict], name: str = "data.jsonl") -> str:
    write_jsonl(tmp / name, rows)
    return str(tmp / name)


GOOD = "1\tA man plays.\tA person plays.\t4.5\tENTAILMENT"
GOOD2 = "2\tA dog runs.\tA cat runs.\t2.0\tNEUTRAL"
RANKING_HEADER = "qtext,label,atext\n"

# Each case: a function of the temporary folder giving extra arguments for `attnguide train`
# (the defaults supply a good --train file and the tiny model), and what the one line must say.
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "missing file": (lambda t: ["--train", str(t / "nope.txt")], ["nope.txt", "not found"]),
    "empty file": (lambda t: ["--train", str(_write(t / "empty.txt", ""))], ["empty.txt", "empty"]),
    "directory for a file": (lambda t: ["--train", str(t)], ["is a directory"]),
    "wrong delimiter": (
        lambda t: [
            "--train",
            str(_write(t / "s.txt", SICK_HEADER.replace("\t", ",") + GOOD.replace("\t", ","))),
        ],
        ["s.txt:1:", "no known layout"],
    ),
    "missing column": (
        lambda t: [
            "--format",
            "multinli",
            "--train",
            nli(t, [{"sentence1": "a", "sentence2": "b", "label": "x"}]),
        ],
        ["data.jsonl:1:", "missing key 'gold_label'"],
    ),
    "unknown label": (
        lambda t: ["--train", sick(t, GOOD, "2\tA dog runs.\tA cat runs.\t2.0\tMAYBE")],
        ["sick.txt:3:", "unknown label 'MAYBE'", "ENTAILMENT, NEUTRAL, CONTRADICTION"],
    ),
    "empty sentence": (
        lambda t: ["--train", sick(t, GOOD, "2\t \tA cat.\t2.0\tNEUTRAL")],
        ["sick.txt:3:", "empty text"],
    ),
    "too few fields": (lambda t: ["--train", sick(t, GOOD, "2\tA dog runs.")], ["sick.txt:3:", "field"]),
    "invalid utf-8": (
        lambda t: [
            "--train",
            str(
                _write_bytes(
                    t / "bad.txt", (SICK_HEADER + GOOD + "\n").encode() + b"3\t\xff\tx\t1\tNEUTRAL\n"
                )
            ),
        ],
        ["bad.txt:3:", "UTF-8"],
    ),
    "jsonl line not json": (
        lambda t: [
            "--train",
            str(
                _write(
                    t / "d.jsonl", '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n{oops\n'
                )
            ),
        ],
        ["d.jsonl:2:", "JSON"],
    ),
    "mixed label types": (
        lambda t: [
            "--format",
            "jsonl",
            "--text-a",
            "a",
            "--label",
            "y",
            "--train",
            nli(t, [{"a": "x y", "y": 1}, {"a": "z w", "y": "one"}]),
        ],
        ["data.jsonl:2:", "mixes types"],
    ),
    "dev label unknown to train": (
        lambda t: ["--dev", sick(t, GOOD, "2\tA dog runs.\tA cat runs.\t2.0\tCONTRADICTION", name="dv.txt")],
        ["dv.txt:3:", "label 'CONTRADICTION' does not occur in the training data"],
    ),
    "unclosed quote": (
        lambda t: [
            "--train",
            str(_write(t / "u.csv", 'a,b,label\nx,y,"pos\nz,w,neg\n')),
            "--text-a",
            "a",
            "--label",
            "label",
        ],
        ["u.csv:2:", "malformed comma-separated row"],
    ),
    "too many fields": (
        lambda t: ["--train", sick(t, GOOD, "2\tA dog\truns.\tA cat runs.\t2.0\tNEUTRAL")],
        ["sick.txt:3:", "too many fields: expected 5 tab-separated fields"],
    ),
    "max length beyond the model": (lambda t: ["--max-length", "100000"], ["--max-length 100000", "at most"]),
    "max length below the special tokens": (lambda t: ["--max-length", "2"], ["use at least 5"]),
    "warmup ratio 1": (lambda t: ["--warmup-ratio", "1"], ["--warmup-ratio must be at least 0 and below 1"]),
    "infinite epochs": (lambda t: ["--epochs", "inf"], ["--epochs must be a positive number"]),
    "negative seed": (lambda t: ["--seed", "-1"], ["--seed must be a whole number from 0"]),
    "unknown logger": (lambda t: ["--report-to", "nope"], ["--report-to: unknown logger 'nope'"]),
    "dev file and dev split": (
        lambda t: ["--dev", sick(t, GOOD), "--dev-split", "validation"],
        ["one of --dev FILE or --dev-split SPLIT"],
    ),
    "dev split without a dataset": (lambda t: ["--dev-split", "validation"], ["--dev-split names a split"]),
    "nothing left after dropping": (
        lambda t: ["--train", nli(t, [{"sentence1": "a", "sentence2": "b", "gold_label": "-"}])],
        ["data.jsonl", "no labelled rows left after dropping 1"],
    ),
    "negative weight": (
        lambda t: ["--guide", "mdg", "--mdg-weight", "-0.1"],
        ["mdg_weight must be a finite number >= 0"],
    ),
    "non-numeric weight": (
        lambda t: ["--pdg-weight", "lots"],
        ["--pdg-weight", "invalid float value: 'lots'"],
    ),
    "temperature zero": (lambda t: ["--temperature", "0"], ["temperature must be a finite number > 0"]),
    "temperature negative": (lambda t: ["--temperature", "-2"], ["temperature must be a finite number > 0"]),
    "layer out of range": (lambda t: ["--layers", "0,5"], ["layer index 5 is out of range", "0..1"]),
    "last:0": (lambda t: ["--layers", "last:0"], ["last:K with K a whole number >= 1"]),
    "model path missing": (lambda t: ["--model", str(t / "no-model")], ["no-model", "does not exist"]),
    "batch size 0": (lambda t: ["--batch-size", "0"], ["--batch-size must be at least 1"]),
    # issue 27: LoRA and the guide settings
    "lora alpha without a rank": (lambda t: ["--lora-alpha", "8"], ["--lora-alpha needs --lora-r"]),
    "lora alpha at its default without a rank": (
        lambda t: ["--lora-alpha", "16"],
        ["--lora-alpha needs --lora-r"],
    ),
    "lora dropout without a rank": (lambda t: ["--lora-dropout", "0.2"], ["--lora-dropout needs --lora-r"]),
    "lora targets without a rank": (
        lambda t: ["--lora-targets", "nosuchmodule"],
        ["--lora-targets needs --lora-r"],
    ),
    "lora on the task head": (
        lambda t: ["--lora-r", "4", "--lora-targets", "query,classifier"],
        ["--lora-targets: 'classifier' is in", "task head", "linear modules: dense, key, query, value"],
    ),
    "lora target missing": (
        lambda t: ["--lora-r", "4", "--lora-targets", "nosuchmodule"],
        ["no linear module named 'nosuchmodule'", "dense, key, query, value"],
    ),
    "lora rank 0": (lambda t: ["--lora-r", "0"], ["--lora-r must be a whole number >= 1, got 0"]),
    "lora alpha 0": (lambda t: ["--lora-r", "4", "--lora-alpha", "0"], ["--lora-alpha must be a positive"]),
    "lora alpha infinite": (
        lambda t: ["--lora-r", "4", "--lora-alpha", "inf"],
        ["--lora-alpha must be a positive finite number"],
    ),
    "lora dropout 1": (
        lambda t: ["--lora-r", "4", "--lora-dropout", "1"],
        ["--lora-dropout must be at least 0 and below 1"],
    ),
    "lora targets empty": (
        lambda t: ["--lora-r", "4", "--lora-targets", " , "],
        ["--lora-targets: name at least one module"],
    ),
    "guide name misspelt": (lambda t: ["--guide", "mdg+pgd"], ["unknown guide 'pgd' (did you mean 'pdg'?)"]),
    "guides joined by a comma": (lambda t: ["--guide", "mdg,pdg"], ["did you mean 'mdg+pdg'?"]),
    "layer given twice": (lambda t: ["--layers", "1,1"], ["--layers '1,1': layer 1 is given twice"]),
    "one layer by two indices": (
        lambda t: ["--layers", "1,-1"],
        ["-1 and 1 are the same layer of a 2-layer model"],
    ),
    "last:-1": (lambda t: ["--layers", "last:-1"], ["last:K with K a whole number >= 1"]),
    "negative guide warm-up": (
        lambda t: ["--guide-warmup-steps", "-1"],
        ["warmup_steps must be a whole number >= 0, got -1"],
    ),
    "temperature infinite": (lambda t: ["--temperature", "inf"], ["temperature must be a finite number > 0"]),
    "weight nan": (lambda t: ["--mdg-weight", "nan"], ["mdg_weight must be a finite number >= 0, got nan"]),
    # issue 27: train across the tasks
    "label range to infinity": (
        lambda t: ["--task", "regression", "--label-range", "1", "inf"],
        ["--label-range 1 inf", "finite"],
    ),
    "label range nan": (
        lambda t: ["--task", "regression", "--label-range", "nan", "5"],
        ["--label-range nan 5", "finite"],
    ),
    "ranking without a relevant candidate": (
        lambda t: [
            "--task",
            "ranking",
            "--train",
            str(_write(t / "r.csv", RANKING_HEADER + "q,0,a\nq,0,b\n")),
        ],
        ["r.csv", "no query has a relevant candidate to train on"],
    ),
    "ranking where every candidate is relevant": (
        lambda t: [
            "--task",
            "ranking",
            "--train",
            str(_write(t / "r.csv", RANKING_HEADER + "q,1,a\nq,2,b\n")),
        ],
        ["r.csv", "every candidate is relevant", "--train-run"],
    ),
    "ranking dev without a relevant candidate": (
        lambda t: [
            "--task",
            "ranking",
            "--train",
            str(_write(t / "r.csv", RANKING_HEADER + "q,1,a\nq,0,b\n")),
            "--dev",
            str(_write(t / "d.csv", RANKING_HEADER + "q,0,a\np,0,b\n")),
        ],
        ["d.csv", "no query has a relevant candidate, so none can be evaluated", "--keep-unanswerable"],
    ),
    "one label only": (
        lambda t: ["--train", sick(t, GOOD, GOOD.replace("1", "2", 1), name="one.txt")],
        ["one.txt", "every example has the label 'ENTAILMENT'", "at least two labels"],
    ),
    "scores as class labels": (
        lambda t: ["--train", sick(t, GOOD, GOOD2), "--label", "relatedness_score"],
        ["sick.txt:2:", "label '4.5' is a fraction", "--task regression"],
    ),
    "one number spelt two ways as labels": (
        lambda t: [
            *("--text-a", "a", "--label", "y"),
            *("--train", str(_write(t / "n.csv", "a,y\nx y,1\nz w,0\nq r,1.0\n"))),
        ],
        ["n.csv:4:", "label '1.0' is the number of label '1' spelt another way"],
    ),
    "infinite learning rate": (lambda t: ["--lr", "inf"], ["--lr must be a positive finite number"]),
    "weight decay nan": (
        lambda t: ["--weight-decay", "nan"],
        ["--weight-decay must be a finite number >= 0"],
    ),
    "negative weight decay": (
        lambda t: ["--weight-decay", "-1"],
        ["--weight-decay must be a finite number >= 0"],
    ),
    "regression dev with one score": (
        lambda t: ["--task", "regression", "--dev", sick(t, GOOD, GOOD.replace("1", "2", 1), name="c.txt")],
        ["c.txt", "every score is 4.5", "scores that differ"],
    ),
    "regression dev of one row": (
        lambda t: ["--task", "regression", "--dev", sick(t, GOOD, name="c.txt")],
        ["c.txt", "every score is 4.5"],
    ),
    "tagging data with one tag": (
        lambda t: ["--task", "token-classification", "--train", str(_write(t / "o.tsv", "a\tO\nb\tO\n\n"))],
        ["o.tsv", "every word is tagged 'O'"],
    ),
    "tagging data without a sub-token": (
        lambda t: [
            *("--task", "token-classification"),
            *("--train", str(_write(t / "z.tsv", "\u200b\tO\n\x07\tB-Disease\n\n"))),
        ],
        ["z.tsv", "no word of any sentence has a sub-token"],
    ),
    "tag that is not IOB": (
        lambda t: [
            *("--task", "token-classification"),
            *("--train", str(_write(t / "x.tsv", "a\tO\nb\tX-Disease\n\n"))),
        ],
        ["x.tsv:2:", "expected a tag O, B-TYPE or I-TYPE", "'X-Disease'"],
    ),
    "jsonl file holding one list": (
        lambda t: [
            "--train",
            str(_write(t / "l.jsonl", '[{"sentence1": "a", "sentence2": "b", "gold_label": "x"}]')),
        ],
        ["l.jsonl:1:", "expected a JSON object on each line, found list"],
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _by_flag(args: list[str]) -> dict[str, list[str]]:
    """Command-line arguments as each flag's values (``--label-range 1 5`` has two)."""
    flags: dict[str, list[str]] = {}
    for arg in args:
        if arg.startswith("--"):
            values = flags[arg] = []
        else:
            values.append(arg)
    return flags


def assert_one_line_error(capsys, code: int, fragments: list[str]) -> None:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert err.startswith("attnguide: error: ") and "\n" not in err, err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tiny_model_dir, tmp_path, capsys) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    make_args, fragments = CASES[case]
    extra = make_args(inputs)
    flags = {
        "--model": [tiny_model_dir],
        "--train": [sick(inputs, GOOD, GOOD2, name="good.txt")],
        "--guide": ["mdg+pdg"],
    }
    flags.update(_by_flag(extra))
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(
        ["train", *[x for flag, values in flags.items() for x in (flag, *values)], "--output-dir", str(out)]
    )
    assert_one_line_error(capsys, code, fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output dir, no hidden partial run


def test_model_without_attention(tmp_path, minilm_path, capsys) -> None:
    import transformers

    model_dir = tmp_path / "fnet"
    config = transformers.FNetConfig(
        hidden_size=32, num_hidden_layers=2, intermediate_size=37, vocab_size=30522
    )
    transformers.FNetModel(config).save_pretrained(model_dir)
    transformers.AutoTokenizer.from_pretrained(minilm_path).save_pretrained(model_dir)
    train = sick(tmp_path, GOOD, "2\tA dog runs.\tA cat runs.\t2.0\tNEUTRAL")
    out = tmp_path / "out"
    code = main(
        ["train", "--model", str(model_dir), "--train", train, "--guide", "mdg", "--output-dir", str(out)]
    )
    assert_one_line_error(capsys, code, ["FNet", "attention"])
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def quick_train(model: str, train: str, out: Path) -> list[str]:
    """The arguments of a one-epoch, quiet ``attnguide train`` run."""
    return ["-q", "train", "--model", model, "--train", train, "--epochs", "1", "--output-dir", str(out)]


def test_existing_directory_is_refused_unless_overwrite(tiny_model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    train = sick(tmp_path, GOOD, "2\tA dog runs.\tA cat runs.\t2.0\tNEUTRAL")
    args = quick_train(tiny_model_dir, train, out)
    assert_one_line_error(capsys, main(args), ["out", "not empty", "--overwrite"])
    assert (out / "notes.txt").read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and (out / "metrics.json").is_file()


def test_over_long_inputs_are_truncated_and_counted(tiny_model_dir, tmp_path, caplog) -> None:
    long = " ".join(["word"] * 80)
    train = sick(tmp_path, GOOD, f"2\t{long}\tA cat runs.\t2.0\tNEUTRAL")
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="attnguide"):
        assert (
            main(
                [
                    "train",
                    "--model",
                    tiny_model_dir,
                    "--train",
                    train,
                    "--max-length",
                    "16",
                    "--epochs",
                    "1",
                    "--output-dir",
                    str(out),
                ]
            )
            == 0
        )
    assert "1 of 2 examples truncated to 16 tokens" in caplog.text
    assert json.loads((out / "run.json").read_text())["options"]["max_length"] == 16


def test_a_logger_that_is_not_installed(tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("transformers.integrations.get_available_reporting_integrations", lambda: [])
    train = sick(tmp_path, GOOD)
    args = ["train", "--model", tiny_model_dir, "--train", train, "--report-to", "tensorboard"]
    code = main([*args, "--output-dir", str(tmp_path / "out")])
    assert_one_line_error(capsys, code, ["--report-to tensorboard: its package is not installed"])


def test_the_current_directory_is_refused_as_output(tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    train = sick(tmp_path, GOOD)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for output in (".", str(tmp_path)):
        code = main(["train", "--model", tiny_model_dir, "--train", train, "--output-dir", output])
        assert_one_line_error(capsys, code, ["is the current directory or holds it"])
    assert not list(tmp_path.glob(".*")) and not list(work.iterdir())


def test_eval_refuses_a_directory_for_output_and_names_the_line_of_an_unknown_label(
    tiny_model_dir, tmp_path, capsys
) -> None:
    train = sick(tmp_path, GOOD, GOOD2, name="tr.txt")
    run = tmp_path / "run"
    assert main(quick_train(tiny_model_dir, train, run)) == 0
    capsys.readouterr()
    data = sick(tmp_path, GOOD, "2\tA dog runs.\tA cat runs.\t2.0\tCONTRADICTION", name="ev.txt")
    (tmp_path / "predictions").mkdir()
    code = main(["eval", "--model", str(run), "--data", train, "--output", str(tmp_path / "predictions")])
    assert_one_line_error(capsys, code, ["predictions: is a directory"])
    code = main(["eval", "--model", str(run), "--data", train, "--output", train])
    assert_one_line_error(capsys, code, ["the input --data and the predictions would be the same file"])
    assert Path(train).read_text().startswith("pair_ID")
    code = main(["eval", "--model", str(run), "--data", data, "--output", str(tmp_path / "p.jsonl")])
    assert_one_line_error(capsys, code, ["ev.txt:3:", "label 'CONTRADICTION' is not one the model knows"])
    assert not (tmp_path / "p.jsonl").exists()
