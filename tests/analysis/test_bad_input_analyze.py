"""Issue 27 for ``attnguide analyze``: bad input ends with exit code 2, one line on stderr naming
the flag or file, and nothing written (no output directory, no hidden partial one, no input lost)."""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from attnguide.analysis.attention_report import AnalyzeOptions
from attnguide.cli import main
from attnguide.errors import AttnguideError
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_json, write_jsonl


@pytest.fixture
def inputs(tmp_path, tiny_model_dir) -> Path:
    """A folder with the tiny model (``model``), NLI data (``data.jsonl``) and tagging data."""
    folder = tmp_path / "inputs"
    shutil.copytree(tiny_model_dir, folder / "model")
    write_jsonl(folder / "data.jsonl", make_dataset(6, seed=3))
    (folder / "tags.conll").write_text("EU\tB-ORG\nrejects\tO\n\n", encoding="utf-8")
    return folder


def analyze(inputs: Path, out: Path, *extra: str, model: str | None = None, data: str | None = None) -> int:
    argv = [
        "-q",
        "analyze",
        "--model",
        model or str(inputs / "model"),
        "--data",
        data or str(inputs / "data.jsonl"),
    ]
    return main([*argv, "--limit", "4", "--max-length", "32", "--output-dir", str(out), *extra])


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("attnguide: error: ") and "\n" not in err and "Traceback" not in captured.err, err
    return err


def _unfinished(inputs: Path) -> str:
    run = inputs / "run"
    shutil.copytree(inputs / "model", run)
    write_json(run / "run.json", {"task": "classification", "options": {}})  # no metrics.json yet
    return str(run)


def _partial(inputs: Path) -> str:
    shutil.copytree(inputs / "model", inputs / ".run.partial" / "checkpoint-2")
    return str(inputs / ".run.partial")


def _no_config(inputs: Path) -> str:
    (inputs / "weights").mkdir()
    shutil.copy(inputs / "model" / "model.safetensors", inputs / "weights")
    return str(inputs / "weights")


# Each case: a function of the inputs folder giving analyze's extra arguments (those after
# --model/--data may replace them), and what the one line must say.
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "empty data file": (
        lambda i: ["--data", str(_touch(i / "empty.jsonl"))],
        ["empty.jsonl: empty file"],
    ),
    "compare model missing": (
        lambda i: ["--compare", str(i / "nosuch")],
        ["nosuch: model path does not exist"],
    ),
    "names count mismatch": (
        lambda i: ["--compare", _copy(i), "--names", "one"],
        ["--names needs 2 distinct names, one per model, got 1"],
    ),
    "the same model twice": (
        lambda i: ["--compare", str(i / "model" / ".." / "model")],
        ["the same model as", "given twice"],
    ),
    "model directory without config.json": (
        lambda i: ["--model", _no_config(i)],
        ["weights: expected a model directory with a config.json"],
    ),
    "unfinished run": (lambda i: ["--model", _unfinished(i)], ["run: an unfinished training run"]),
    "hidden partial run": (
        lambda i: ["--compare", _partial(i)],
        [".run.partial: an unfinished training run", "checkpoint-2"],
    ),
    "data of another task": (
        lambda i: ["--data", str(i / "tags.conll")],
        ["tags.conll:1: no known layout matches the data"],
    ),
    "max length beyond the model": (
        lambda i: ["--max-length", "100000"],
        ["--max-length 100000", "at most 128"],
    ),
    "max length below the special tokens": (lambda i: ["--max-length", "2"], ["use at least 5"]),
    "bertviz into a directory": (lambda i: ["--bertviz", str(i)], ["--bertviz", "is a directory"]),
}


def _touch(path: Path) -> Path:
    path.write_text("", encoding="utf-8")
    return path


def _copy(inputs: Path) -> str:
    shutil.copytree(inputs / "model", inputs / "other")
    return str(inputs / "other")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, inputs, tmp_path, capsys) -> None:
    make_args, fragments = CASES[case]
    extra = make_args(inputs)
    given = dict(zip(extra[::2], extra[1::2], strict=False))
    names = extra[extra.index("--names") :] if "--names" in extra else []
    flags = [x for pair in given.items() if pair[0] != "--names" for x in pair]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = analyze(inputs, tmp_path / "out", *flags, *names)
    assert code == 2
    err = one_line(capsys)
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no hidden partial one


def test_an_output_file_is_not_replaced(inputs, tmp_path, capsys) -> None:
    out = _touch(tmp_path / "report.md")
    assert analyze(inputs, out) == 2
    assert "report.md: output path exists and is not a directory" in one_line(capsys)


@pytest.mark.parametrize("what", ["--model", "--compare", "--data"])
def test_overwrite_never_deletes_an_input(inputs, tmp_path, capsys, what) -> None:
    out = tmp_path / "out"
    shutil.copytree(inputs, out / "inputs")
    held = {"--model": "model", "--compare": "model", "--data": "data.jsonl"}[what]
    extra = ["--overwrite"]
    if what == "--model":
        code = analyze(inputs, out, *extra, model=str(out / "inputs" / "model"))
    elif what == "--compare":
        code = analyze(inputs, out, *extra, "--compare", str(out / "inputs" / "model"))
    else:
        code = analyze(inputs, out, *extra, data=str(out / "inputs" / "data.jsonl"))
    assert code == 2
    assert f"holds {what} " in one_line(capsys)
    assert (out / "inputs" / held).exists()


def test_a_missing_model_fails_before_any_is_analysed(inputs, tmp_path, capsys, monkeypatch) -> None:
    def diagnose(*args, **kwargs):
        raise AssertionError("a model was analysed before every model was found")

    monkeypatch.setattr("attnguide.analysis.attention_report.diagnose", diagnose)
    assert analyze(inputs, tmp_path / "out", "--compare", _copy(inputs), "nosuch/model") == 2
    assert "nosuch/model" in one_line(capsys)


def test_a_bertviz_view_inside_the_output_directory_survives_publishing(
    inputs, tmp_path, monkeypatch
) -> None:
    """The head view is written into the partial directory, so that publishing keeps it."""
    fake = types.ModuleType("bertviz")
    fake.head_view = lambda attentions, tokens, **kwargs: types.SimpleNamespace(data=" ".join(tokens))
    monkeypatch.setitem(sys.modules, "bertviz", fake)
    monkeypatch.setattr("attnguide.analysis.attention_report._check_bertviz", lambda: None)
    out = tmp_path / "out"
    assert analyze(inputs, out, "--bertviz", str(out / "views" / "head.html")) == 0
    assert (out / "views" / "head.html").read_text().startswith("[CLS]") and (out / "report.md").is_file()


@pytest.mark.parametrize("argument", ["models", "names"])
def test_the_api_refuses_text_for_a_list(argument) -> None:
    settings = {"models": ["a", "b"], "names": None, argument: "ab"}
    with pytest.raises(AttnguideError, match=f"AnalyzeOptions: {argument} is a list, one per model"):
        AnalyzeOptions(output_dir="out", **settings)
