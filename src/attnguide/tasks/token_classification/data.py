"""Readers of tagged sentences: one tag per word, as named-entity data comes.

Layouts (``format``; ``auto`` detects them from the file):

- ``iob``: one word per line, tab-separated columns with the tag last (the two-column ``token<TAB>tag``
  of BioBERT's NER data sets, such as NCBI disease), a blank line after each sentence;
- ``conll``: the same with space-separated columns (CoNLL-2003: word, POS, chunk, NER tag);
  ``-DOCSTART-`` lines are skipped;
- ``jsonl``: one sentence per line, ``{"tokens": [...], "tags": [...]}`` (other key names with
  ``--text-a`` and ``--label``);
- a HuggingFace dataset (``--dataset``) with a tokens and a tags column (``tokens``/``tags``, or
  ``ner_tags`` as a sequence of class labels).

Every sentence remembers the file lines its words came from, so that errors name the line and
predictions can be written back in the input's own layout, one tag for every input word.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...files import write_text
from ..readers import Columns, check_data_file, kind_of, load_hf_split

FORMATS = ("auto", "iob", "conll", "jsonl")
_TAG = re.compile(r"^(O|[BIES]-\S+)$")
_DOCSTART = "-DOCSTART-"
_SPACES = re.compile(r"[ \t]+")


@dataclass
class TaggedSentences:
    """Sentences as lists of words with one tag each, and where each word was read from.

    ``lines[s][w]`` is the file line of word ``w`` of sentence ``s`` (for JSONL, the sentence's
    line; for a dataset, its row index, with ``by_line`` False).
    """

    words: list[list[str]]
    tags: list[list[str]]
    source: str
    layout: str
    lines: list[list[int]]
    by_line: bool = True
    raw: list[str] = field(default_factory=list, repr=False)  # the file's lines, for writing back
    tag_key: str = "tags"

    def __len__(self) -> int:
        return len(self.words)

    @property
    def word_count(self) -> int:
        return sum(len(words) for words in self.words)

    def error(self, sentence: int, word: int, message: str) -> DataError:
        """A DataError at the line (or row) of one word."""
        number = self.lines[sentence][word]
        if self.by_line:
            return DataError(self.source, message, line=number)
        return DataError(self.source, f"{message} (row index {number})")

    def first(self, limit: int) -> TaggedSentences:
        """The first ``limit`` sentences (all with 0)."""
        if limit == 0 or limit >= len(self):
            return self
        return TaggedSentences(
            self.words[:limit], self.tags[:limit], self.source, self.layout, self.lines[:limit], self.by_line
        )


def tag_list(train: TaggedSentences, dev: TaggedSentences | None = None) -> list[str]:
    """The model's labels: ``O`` first, then the other tags sorted by entity type, ``B-`` before
    ``I-``. Training data with one tag only, or a dev tag the training data lacks, is an error."""
    seen = {tag for tags in train.tags for tag in tags}
    if len(seen) < 2:
        raise DataError(
            train.source, f"every word is tagged {seen.pop()!r}; a tagger needs at least two tags to learn"
        )
    labels = sorted(seen, key=lambda t: (t != "O", t[2:], t[:1]))
    if dev is not None:
        check_known_tags(dev, labels)
    return labels


def check_known_tags(data: TaggedSentences, labels: list[str]) -> None:
    """A DataError at the first word whose tag is not one of ``labels`` (the ones training saw)."""
    known = set(labels)
    for s, tags in enumerate(data.tags):
        for w, tag in enumerate(tags):
            if tag not in known:
                raise data.error(
                    s, w, f"tag {tag!r} does not occur in the training data (known: {', '.join(labels)})"
                )


def read_tagged(path: str | Path, format: str = "auto", columns: Columns | None = None) -> TaggedSentences:
    """Read a file of tagged sentences in one of ``FORMATS``; anything malformed is a DataError
    naming the file and line."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
    path = Path(path)
    check_data_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(path, f"invalid UTF-8 ({error.reason}); expected UTF-8 text") from None
    raw = _lines(text)
    layout = format if format != "auto" else _detect(path, raw)
    if layout == "jsonl":
        data = _read_jsonl(path, raw, columns or Columns())
    else:
        if columns is not None and columns.given():
            raise DataError(path, f"--text-a/--label name JSONL keys; the {layout} layout has none")
        data = _read_columns(path, raw, layout)
    if not data.words:
        raise DataError(path, "no sentences")
    return data


def _lines(text: str) -> list[str]:
    """The lines of ``text`` with their ends; only a newline (LF or CRLF) ends a line, not the other
    breaks ``str.splitlines`` knows (U+2028, U+0085, form feed, ...), which may sit inside a word."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _detect(path: Path, raw: list[str]) -> str:
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    first = next((line for line in raw if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "iob" if "\t" in first else "conll"


def _read_columns(path: Path, raw: list[str], layout: str) -> TaggedSentences:
    """The iob (tab) and conll (space) layouts: a word per line, the tag last, blank lines between
    sentences; every word line has the same number of columns, at least two."""
    what = "tab-separated" if layout == "iob" else "space-separated"
    data = TaggedSentences([], [], str(path), layout, [], raw=raw)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    width = None

    def end_sentence() -> None:
        if words:
            data.words.append(list(words))
            data.tags.append(list(tags))
            data.lines.append(list(lines))
        words.clear(), tags.clear(), lines.clear()

    for number, line in enumerate(raw, 1):
        content = line.rstrip("\r\n")
        if not content.strip():
            end_sentence()
            continue
        # conll: split at runs of ASCII spaces and tabs only, as a word may hold other spaces
        fields = content.split("\t") if layout == "iob" else _SPACES.split(content.strip(" \t"))
        if fields[0].strip() == _DOCSTART:
            end_sentence()
            continue
        width = width or len(fields)
        if len(fields) < 2 or len(fields) != width:
            expected = "2 or more" if width < 2 else str(width)
            raise DataError(
                path, f"expected {expected} {what} columns (word ... tag), found {len(fields)}", line=number
            )
        word, tag = fields[0].strip(), fields[-1].strip()
        if not word:
            raise DataError(path, "empty word in the first column", line=number)
        if not _TAG.match(tag):
            raise DataError(
                path, f"expected a tag O, B-TYPE or I-TYPE in the last column, found {tag!r}", line=number
            )
        words.append(word)
        tags.append(tag)
        lines.append(number)
    end_sentence()
    return data


def _read_jsonl(path: Path, raw: list[str], columns: Columns) -> TaggedSentences:
    token_key, tag_key = columns.text_a or "tokens", columns.label or "tags"
    data = TaggedSentences([], [], str(path), "jsonl", [], raw=raw, tag_key=tag_key)
    for number, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(path, f"expected a JSON object on each line ({error.msg})", line=number) from None
        if not isinstance(record, dict):
            raise DataError(
                path, f"expected a JSON object on each line, found {kind_of(record)}", line=number
            )
        words, tags = record.get(token_key), record.get(tag_key)
        _check_sentence(path, number, words, tags, token_key, tag_key, by_line=True)
        data.words.append([w.strip() for w in words])
        data.tags.append([t.strip() for t in tags])
        data.lines.append([number] * len(words))
    return data


def _check_sentence(
    source: str | Path, number: int, words: Any, tags: Any, token_key: str, tag_key: str, by_line: bool
) -> None:
    def fail(message: str) -> DataError:
        if by_line:
            return DataError(source, message, line=number)
        return DataError(source, f"{message} (row index {number})")

    if not isinstance(words, list) or not isinstance(tags, list):
        raise fail(f"expected lists under {token_key!r} and {tag_key!r}")
    if not words:
        raise fail("a sentence with no tokens")
    if len(words) != len(tags):
        raise fail(f"{len(words)} tokens but {len(tags)} tags")
    for word, tag in zip(words, tags, strict=True):
        if not isinstance(word, str) or not word.strip():
            raise fail(f"expected non-empty text for every token, found {word!r}")
        if not isinstance(tag, str) or not _TAG.match(tag.strip()):
            raise fail(f"expected a tag O, B-TYPE or I-TYPE, found {tag!r}")


def load_hf_tagged(
    name_or_path: str | Path, split: str = "train", columns: Columns | None = None
) -> TaggedSentences:
    """One split of a HuggingFace dataset with a tokens and a tags column: a ``save_to_disk`` folder,
    or a Hub name (needs internet). Tags given as class labels become their names."""
    columns = columns or Columns()
    source = str(name_or_path)
    loaded = load_hf_split(name_or_path, split)
    names = list(loaded.column_names)
    token_key = columns.text_a or "tokens"
    tag_key = columns.label or next((k for k in ("tags", "ner_tags") if k in names), "tags")
    for key in (token_key, tag_key):
        if key not in names:
            raise DataError(source, f"missing column {key!r} (columns: {', '.join(names)})")
    feature = loaded.features[tag_key]
    classes = getattr(getattr(feature, "feature", None), "names", None)
    data = TaggedSentences([], [], source, "hf", [], by_line=False, tag_key=tag_key)
    for row, (words, tags) in enumerate(zip(loaded[token_key], loaded[tag_key], strict=True)):
        if classes is not None and isinstance(tags, list):
            tags = [classes[t] if isinstance(t, int) and 0 <= t < len(classes) else t for t in tags]
        _check_sentence(source, row, words, tags, token_key, tag_key, by_line=False)
        data.words.append([w.strip() for w in words])
        data.tags.append([t.strip() for t in tags])
        data.lines.append([row] * len(words))
    if not data.words:
        raise DataError(source, "no sentences")
    return data


def write_predictions(data: TaggedSentences, predictions: list[list[str]], path: Path) -> None:
    """The predicted tags in the input's own layout, one for every input word: the file's lines with
    the tag column replaced (iob, conll), or its records with the tags replaced (JSONL, datasets)."""
    if data.layout in ("iob", "conll"):
        lines = list(data.raw)
        for numbers, tags in zip(data.lines, predictions, strict=True):
            for number, tag in zip(numbers, tags, strict=True):
                line = lines[number - 1]
                body = line.rstrip("\r\n")
                cut = len(body.rstrip()) - len(body.rstrip().split()[-1])
                lines[number - 1] = body[:cut] + tag + line[len(body) :]
        write_text(path, "".join(lines))
    elif data.layout == "jsonl":
        lines = list(data.raw)
        for numbers, tags in zip(data.lines, predictions, strict=True):
            record = json.loads(lines[numbers[0] - 1])
            record[data.tag_key] = tags
            lines[numbers[0] - 1] = json.dumps(record, ensure_ascii=False) + "\n"
        write_text(path, "".join(lines))
    else:
        rows = (
            json.dumps({"tokens": words, data.tag_key: tags}, ensure_ascii=False) + "\n"
            for words, tags in zip(data.words, predictions, strict=True)
        )
        write_text(path, "".join(rows))
