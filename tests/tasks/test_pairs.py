"""Tests for attnguide.data: every layout, auto-detection, the real SICK/MSRP files and the error cases."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from attnguide.errors import DataError
from attnguide.files import write_jsonl
from attnguide.tasks.pairs.data import FORMATS, PairData, label_list, load_hf_dataset, read_pairs
from attnguide.tasks.readers import Columns

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NLI_ORDER = ("entailment", "neutral", "contradiction")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def test_formats_list_every_cli_choice() -> None:
    assert FORMATS[0] == "auto"
    assert set(FORMATS) == {
        "auto", "multinli", "snli", "mednli", "glue-mnli", "glue-rte", "glue-qnli", "glue-mrpc",
        "glue-sst2", "sick", "msrp", "csv", "tsv", "jsonl",
    }  # fmt: skip


# --- layouts on fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["auto", "multinli", "mednli", "jsonl"])
def test_multinli_jsonl_drops_unlabelled_rows(format: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="attnguide"):
        data = read_pairs(FIXTURES / "multinli.jsonl", format=format)
    assert len(data) == 4
    assert data.dropped == 1
    assert data.layout == "nli"
    assert data.label_order == NLI_ORDER
    assert data.labels == ["neutral", "entailment", "entailment", "contradiction"]
    assert data.text_a[2] == "How do you know? All this is their information again."
    assert data.text_b is not None
    assert data.text_b[0] == "Product and geography are what make cream skimming work."  # stripped
    assert "dropped 1 unlabelled" in caplog.text
    assert label_list(data) == ["entailment", "neutral", "contradiction"]


def test_snli_jsonl() -> None:
    data = read_pairs(FIXTURES / "snli.jsonl", format="snli")
    assert (len(data), data.dropped, data.layout) == (4, 0, "nli")
    assert data.text_b is not None
    assert data.text_b[1] == "A person is at a diner, ordering an omelette."
    assert label_list(data) == ["entailment", "neutral", "contradiction"]


def test_snli_txt_release_is_read_as_tsv() -> None:
    data = read_pairs(FIXTURES / "snli.txt")
    assert (len(data), data.dropped, data.layout) == (3, 1, "nli")
    assert data.text_a[0] == 'A man says "hello to a dog.'
    assert data.labels == ["neutral", "contradiction", "entailment"]


@pytest.mark.parametrize("format", ["auto", "glue-mnli"])
def test_glue_mnli_tsv(format: str) -> None:
    data = read_pairs(FIXTURES / "glue_mnli.tsv", format=format)
    assert (len(data), data.layout, data.label_order) == (5, "glue-mnli", NLI_ORDER)
    assert data.text_b is not None
    assert data.text_b[2] == 'I like him for the most part, but would still enjoy seeing someone "beat him.'
    assert data.labels == ["neutral", "contradiction", "contradiction", "contradiction", "entailment"]
    assert label_list(data) == ["entailment", "neutral", "contradiction"]


def test_glue_mnli_tsv_read_as_multinli_uses_the_nli_layout() -> None:
    data = read_pairs(FIXTURES / "glue_mnli.tsv", format="multinli")
    assert (len(data), data.layout) == (5, "nli")


@pytest.mark.parametrize("format", ["auto", "glue-rte"])
def test_glue_rte(format: str) -> None:
    data = read_pairs(FIXTURES / "glue_rte.tsv", format=format)
    assert (len(data), data.layout) == (4, "glue-rte")
    assert data.label_order == ("entailment", "not_entailment")
    assert data.text_a[3] == 'Judie Vivian, chief executive at ProMedica, said "we are proud.'
    assert label_list(data) == ["entailment", "not_entailment"]


@pytest.mark.parametrize("format", ["auto", "glue-qnli"])
def test_glue_qnli(format: str) -> None:
    data = read_pairs(FIXTURES / "glue_qnli.tsv", format=format)
    assert (len(data), data.layout) == (4, "glue-qnli")
    assert data.text_a[3] == "How was Temüjin kept imprisoned by the Tayichi'ud?"
    assert data.text_b is not None
    assert data.text_b[0].startswith("As of that day")
    assert data.labels == ["entailment", "not_entailment", "not_entailment", "entailment"]


@pytest.mark.parametrize("format", ["auto", "glue-sst2"])
def test_glue_sst2_is_single_sentence(format: str) -> None:
    data = read_pairs(FIXTURES / "glue_sst2.tsv", format=format)
    assert (len(data), data.layout, data.text_b) == (5, "glue-sst2", None)
    assert data.text_a[3] == 'the greatest musicians " and cruel'
    assert data.labels == ["0", "0", "1", "0", "1"]
    assert label_list(data) == ["0", "1"]


@pytest.mark.parametrize("format", ["auto", "csv"])
def test_generic_csv_keeps_quoted_commas(format: str) -> None:
    data = read_pairs(
        FIXTURES / "generic.csv", format, Columns(text_a="claim", text_b="evidence", label="verdict")
    )
    assert (len(data), data.layout, data.label_order) == (4, "csv", None)
    assert data.text_a[0] == "Paris, the capital, is in France."
    assert data.text_b is not None
    assert data.text_b[1] == 'The moon is rock, dust and "regolith".'
    assert label_list(data) == ["refuted", "supported"]


def test_generic_csv_single_sentence() -> None:
    data = read_pairs(FIXTURES / "generic.csv", columns=Columns(text_a="evidence", label="verdict"))
    assert data.text_b is None
    assert data.text_a[3] == "Most bats can see; many also use echolocation."


@pytest.mark.parametrize("format", ["auto", "jsonl"])
def test_generic_jsonl_with_integer_labels(format: str) -> None:
    data = read_pairs(
        FIXTURES / "generic.jsonl", format, Columns(text_a="query", text_b="document", label="relevant")
    )
    assert (len(data), data.layout) == (4, "jsonl")
    assert data.labels == ["1", "0", "1", "0"]
    assert label_list(data) == ["0", "1"]


def test_generic_column_names_do_not_impose_a_glue_label_set(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="attnguide")
    sentiment = tmp_path / "sentiment.csv"
    sentiment.write_text("sentence,label\ngood,pos\nbad,neg\nfine,pos\n")
    for format in ("auto", "csv"):
        data = read_pairs(sentiment, format=format)
        assert (data.layout, data.labels, data.label_order) == ("glue-sst2", ["pos", "neg", "pos"], None)
        assert label_list(data) == ["neg", "pos"]
    assert "label 'pos' is not one of the glue-sst2 layout's (0, 1)" in caplog.text
    five = tmp_path / "sst5.jsonl"
    write_jsonl(five, [{"sentence": f"s{i}", "label": i} for i in range(5)])
    assert label_list(read_pairs(five)) == ["0", "1", "2", "3", "4"]
    with pytest.raises(DataError, match=r"sentiment.csv:2: unknown label 'pos' in 'label' \(known: 0, 1\)"):
        read_pairs(sentiment, format="glue-sst2")  # a named layout keeps its label set


def test_generic_tsv_reads_quotes_literally(tmp_path: Path) -> None:
    path = write(tmp_path, "pairs.txt", 'left\tright\ty\n"open quote\tclose" quote\tyes\n')
    data = read_pairs(path, format="tsv", columns=Columns(text_a="left", text_b="right", label="y"))
    assert (data.text_a, data.text_b, data.labels, data.layout) == (
        ['"open quote'],
        ['close" quote'],
        ["yes"],
        "tsv",
    )


def test_column_arguments_override_a_detected_layout() -> None:
    data = read_pairs(FIXTURES / "glue_mnli.tsv", columns=Columns(text_a="genre", label="label1"))
    assert data.layout == "glue-mnli"
    assert data.text_a[0] == "slate"
    assert data.text_b is not None  # text_b still from the layout
    assert data.labels[1] == "contradiction"


# --- real files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["auto", "sick"])
def test_sick_trial(format: str, shared_data: Path) -> None:
    path = shared_data / "sick" / "SICK_trial.txt"
    data = read_pairs(path, format=format)
    assert (len(data), data.layout, data.dropped) == (500, "sick", 0)
    assert data.label_order == ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")
    assert data.text_a[0] == "The young boys are playing outdoors and the man is smiling nearby"
    assert data.text_b is not None
    assert data.text_b[0] == "There is no boy playing outdoors and there is no man smiling"
    assert data.labels[:2] == ["CONTRADICTION", "NEUTRAL"]
    assert label_list(data) == ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]


@pytest.mark.parametrize("format", ["auto", "msrp", "glue-mrpc"])
def test_msrp_train_despite_bom_crlf_and_bare_quotes(format: str, shared_data: Path) -> None:
    path = shared_data / "msrp" / "msr-para-train.tsv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbfQuality\t")
    data = read_pairs(path, format=format)
    assert (len(data), data.layout, data.label_order) == (3576, "msrp", ("0", "1"))
    assert data.labels[0] == "1"  # the header's BOM did not hide the 'Quality' column
    assert data.text_a[0] == (
        'Amrozi accused his brother, whom he called "the witness", of deliberately distorting his evidence.'
    )
    assert data.text_b is not None
    assert not any(text.endswith("\r") for text in data.text_b)
    # Line 11 of the file: the second sentence opens a quote that it never closes.
    assert data.text_b[9] == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert data.labels[9] == "1"
    assert set(data.labels) == {"0", "1"}
    assert label_list(data) == ["0", "1"]


def test_msrp_val_against_train(shared_data: Path) -> None:
    train = read_pairs(shared_data / "msrp" / "msr-para-train.tsv")
    dev = read_pairs(shared_data / "msrp" / "msr-para-val.tsv")
    assert len(dev) == 500
    assert dev.text_a[0].startswith("Stocks have rallied sharply")
    assert label_list(train, dev) == ["0", "1"]


# --- HuggingFace datasets saved to disk -----------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    rows = {
        "premise": ["A man plays a guitar.", "A dog sleeps.", "Kids play soccer.", "A cat eats."],
        "hypothesis": ["Someone makes music.", "The dog runs.", "Children are outside.", "An animal."],
        "label": [0, 2, -1, 1],
    }
    path = tmp_path_factory.mktemp("hf") / "snli_like"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path))
    return path


def test_hf_dataset_with_class_label(hf_dir: Path) -> None:
    data = load_hf_dataset(hf_dir)
    assert (len(data), data.dropped, data.layout) == (3, 1, "premise-hypothesis")
    assert data.labels == ["entailment", "contradiction", "neutral"]
    assert data.label_order == ("entailment", "neutral", "contradiction")
    assert data.text_a == ["A man plays a guitar.", "A dog sleeps.", "A cat eats."]
    assert data.text_b == ["Someone makes music.", "The dog runs.", "An animal."]
    assert label_list(data) == ["entailment", "neutral", "contradiction"]


def test_hf_dataset_dict_split_and_plain_labels(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    split = datasets.Dataset.from_dict({"sentence": ["good film", "bad film"], "label": [1, 0]})
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(str(tmp_path))
    data = load_hf_dataset(tmp_path, split="validation")
    assert (data.text_a, data.text_b, data.labels) == (["good film", "bad film"], None, ["1", "0"])
    assert (data.layout, data.label_order) == ("single-sentence", None)
    with pytest.raises(DataError, match=r"no split 'test' \(splits: train, validation\)"):
        load_hf_dataset(tmp_path, split="test")


def test_hf_dataset_column_arguments(hf_dir: Path) -> None:
    data = load_hf_dataset(hf_dir, columns=Columns(text_a="hypothesis", text_b="premise"))
    assert data.text_a[0] == "Someone makes music."
    with pytest.raises(DataError, match=r"missing column 'claim' \(columns: premise, hypothesis, label\)"):
        load_hf_dataset(hf_dir, columns=Columns(text_a="claim"))


def test_a_plain_saved_dataset_has_no_other_split_and_path_typos_fail_at_once(hf_dir: Path, tmp_path) -> None:
    assert len(load_hf_dataset(hf_dir, split="train")) == 3  # the one dataset serves as training data
    with pytest.raises(DataError, match="holds one dataset without splits, so no split 'validation'"):
        load_hf_dataset(hf_dir, split="validation")
    with pytest.raises(DataError, match="no such dataset folder"):
        load_hf_dataset(str(hf_dir) + "-typo")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match="is a file; --dataset takes a save_to_disk folder"):
        load_hf_dataset(tmp_path / "data.txt")


def test_a_dataset_trains_with_a_dev_file_beside_it(hf_dir: Path, tmp_path) -> None:
    from attnguide.tasks.classification.run import ClassificationRun
    from attnguide.tasks.classification.task import ClassificationOptions

    dev = tmp_path / "dev.jsonl"
    write_jsonl(dev, [{"sentence1": "A dog.", "sentence2": "An animal.", "gold_label": "entailment"}])
    task = ClassificationRun(
        ClassificationOptions(output_dir=str(tmp_path / "out"), dataset=str(hf_dir), dev=str(dev))
    )
    assert task.read() == ["entailment", "neutral", "contradiction"]
    assert (len(task.train_data), task.dev_data.source, len(task.dev_data)) == (3, str(dev), 1)


# --- label_list -----------------------------------------------------------------------------------------


def pairs(labels: list[str], order: tuple[str, ...] | None = None, source: str = "train.tsv") -> PairData:
    return PairData(["a"] * len(labels), None, labels, source, "test", order)


def test_label_list_keeps_canonical_order_of_seen_labels() -> None:
    assert label_list(pairs(["contradiction", "entailment"], NLI_ORDER)) == ["entailment", "contradiction"]


def test_label_list_sorts_when_the_order_does_not_cover_the_labels() -> None:
    assert label_list(pairs(["1", "0", "2"], ("0", "1"))) == ["0", "1", "2"]
    assert label_list(pairs(["b", "a", "c"])) == ["a", "b", "c"]


def test_label_list_rejects_dev_labels_unseen_in_train() -> None:
    dev = pairs(["a", "z"], source="dev.tsv")
    with pytest.raises(
        DataError, match=r"^dev\.tsv: label 'z' does not occur in the training data \(known: a, b\)$"
    ):
        label_list(pairs(["b", "a"]), dev)


# --- errors ---------------------------------------------------------------------------------------------


def raises(path: Path, pattern: str, line: int | None, **kwargs: str) -> DataError:
    """Read ``path`` and check the DataError names the file, the line and the problem."""
    with pytest.raises(DataError) as caught:
        read_pairs(path, kwargs.pop("format", "auto"), Columns(**kwargs))
    error = caught.value
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(where), str(error)
    assert (error.path, error.line) == (str(path), line)
    assert re.search(pattern, error.message), error.message
    return error


def test_missing_file(tmp_path: Path) -> None:
    raises(tmp_path / "nope.tsv", "file not found", None)


def test_directory(tmp_path: Path) -> None:
    raises(tmp_path, "is a directory", None)


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    raises(write(tmp_path, "empty.tsv", content), "empty file", None)


def test_empty_jsonl_file(tmp_path: Path) -> None:
    raises(write(tmp_path, "empty.jsonl", "\n"), "empty file", None)


def test_header_only(tmp_path: Path) -> None:
    raises(write(tmp_path, "rte.tsv", "index\tsentence1\tsentence2\tlabel\n"), "no data rows", 1)


def test_too_few_fields(tmp_path: Path) -> None:
    content = "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n\n1\tA dog.\tAn animal.\n"
    raises(write(tmp_path, "rte.tsv", content), r"too few fields: expected at least 4 .*'label'.*found 3", 4)


def test_empty_text(tmp_path: Path) -> None:
    content = "sentence\tlabel\nfine\t1\n  \t0\n"
    raises(write(tmp_path, "sst2.tsv", content), "empty text in column 'sentence'", 3)


def test_empty_text_in_jsonl(tmp_path: Path) -> None:
    content = '{"sentence1": "A.", "sentence2": "B.", "gold_label": "neutral"}\n'
    content += '{"sentence1": "A.", "sentence2": null, "gold_label": "neutral"}\n'
    raises(write(tmp_path, "snli.jsonl", content), "expected text in 'sentence2', found null", 2)


def test_invalid_utf8(tmp_path: Path) -> None:
    content = b"sentence\tlabel\nfine\t1\ncaf\xe9\t0\nok\t1\n"
    raises(write(tmp_path, "latin1.tsv", content), r"invalid UTF-8 \(byte 0xe9", 3)


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    good = '{"sentence1": "A.", "sentence2": "B.", "gold_label": "neutral"}\n'
    raises(
        write(tmp_path, "a.jsonl", good + '["A.", "B."]\n'),
        "expected a JSON object on each line, found list",
        2,
    )
    raises(write(tmp_path, "b.jsonl", good + "\n" + '{"sentence1": "A.",\n'), "found invalid JSON", 3)


def test_missing_column_for_an_explicit_format(shared_data: Path) -> None:
    sick = shared_data / "sick" / "SICK_trial.txt"
    raises(
        sick, r"missing column 'sentence1' \(header has: pair_ID, sentence_A, sentence_B, ", 1, format="snli"
    )


def test_missing_column_named_by_the_user() -> None:
    raises(
        FIXTURES / "glue_rte.tsv",
        r"missing column 'hypothesis' \(header has: index, ",
        1,
        text_b="hypothesis",
    )


def test_missing_key_in_a_later_jsonl_record(tmp_path: Path) -> None:
    content = '{"sentence1": "A.", "sentence2": "B.", "gold_label": "neutral"}\n'
    content += '{"sentence1": "A.", "gold_label": "neutral"}\n'
    raises(write(tmp_path, "snli.jsonl", content), "missing key 'sentence2'", 2)


def test_all_rows_dropped(tmp_path: Path) -> None:
    content = '{"sentence1": "A.", "sentence2": "B.", "gold_label": "-"}\n'
    content += '{"sentence1": "A.", "sentence2": "C.", "gold_label": ""}\n'
    raises(write(tmp_path, "snli.jsonl", content), "no labelled rows left after dropping 2 unlabelled", None)


def test_auto_without_a_matching_layout() -> None:
    error = raises(FIXTURES / "generic.csv", r"header has: claim, evidence, verdict", 1)
    assert "--format" in error.message
    assert "--text-a/--text-b/--label" in error.message
    raises(FIXTURES / "generic.csv", r"--text-a and --label", 1, text_a="claim")


def test_generic_format_needs_column_names() -> None:
    raises(
        FIXTURES / "generic.jsonl", r"first record has keys: id, query, document, relevant", 1, format="jsonl"
    )


def test_error_line_counts_physical_lines_of_multiline_csv_fields(tmp_path: Path) -> None:
    content = 'text,label\n"two\nlines",a\n"",b\n'
    raises(
        write(tmp_path, "multi.csv", content), "empty text in column 'text'", 4, text_a="text", label="label"
    )


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read_pairs(FIXTURES / "generic.csv", format="xml")
