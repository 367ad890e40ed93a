"""The token classification task: a tag for every word (named entities, BIO tags), scored with
entity-level F1.

``TOKEN_CLASSIFICATION`` is the task object of ``tasks.protocol`` and
``TokenClassificationOptions`` its training options; the work is done in ``run`` (training and
evaluation), ``encoding`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import AttnguideError
from ...training.options import TrainOptions, option
from ..protocol import EvalOptions, eval_options_class
from ..readers import Columns
from .data import FORMATS

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from .data import TaggedSentences
    from .run import TokenClassificationRun

ENTITY_METRICS = ("f1", "precision", "recall", "accuracy")
"""The measures ``compare`` may choose by: entity F1 (the default), precision and recall, micro
over entities, and token accuracy."""


def check_one_text(columns: Columns) -> None:
    """A tagged sentence has one text: refuse ``--text-b``."""
    if columns.text_b is not None:
        raise AttnguideError("--text-b: a tagged sentence has one text (its tokens, --text-a)")


@dataclass
class TokenClassificationOptions(TrainOptions):
    """Every setting of a token classification run: those of ``TrainOptions``, the data layout, the
    named JSONL/dataset keys (``text_a``: the tokens, ``label``: the tags) and the overlap of the
    windows that split a long sentence."""

    format: str = option("auto")
    columns: Columns = option(default_factory=Columns)
    stride: int = option(
        32,
        help="sub-tokens of overlap between the windows of a sentence longer than --max-length (default: 32)",
        commands=("train", "eval"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        check_one_text(self.columns)
        if self.stride < 0:
            raise AttnguideError(f"--stride must be at least 0, got {self.stride}")


class TokenClassificationTask:
    """Tagging words: a token classifier, its loss on each word's first sub-token."""

    name = "token-classification"
    help = "a tag per word (named entities), scored with entity F1"
    metrics = ENTITY_METRICS
    formats = FORMATS
    format_option = "format"
    train_options = TokenClassificationOptions
    eval_options = eval_options_class("TokenClassificationEvalOptions", TokenClassificationOptions)

    def start(self, options: TokenClassificationOptions) -> TokenClassificationRun:
        from .run import TokenClassificationRun

        return TokenClassificationRun(options)

    def _read(self, options: EvalOptions) -> TaggedSentences:
        from .data import read_tagged

        check_one_text(options.columns)
        return read_tagged(options.data, options.format, options.columns)

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        from ...models import check_max_length, load_model, load_tokenizer
        from ..eval_files import EvalFiles, trained_guide
        from .data import check_known_tags, write_predictions
        from .encoding import encode_windows
        from .run import evaluate_tags

        files = EvalFiles.checked(options, Path(options.data).suffix or ".txt")
        data = self._read(options)
        tokenizer = load_tokenizer(options.model)
        model = load_model(options.model, attn_implementation="eager", head="token")
        check_known_tags(data, list(model.config.id2label.values()))
        check_max_length(options.model, model, tokenizer, options.max_length)
        windows = encode_windows(data, tokenizer, options.max_length, stride=options.stride)
        guide = trained_guide(options.model)
        evaluation = evaluate_tags(model, tokenizer, data, windows, guide, options.batch_size)
        write_predictions(data, evaluation.predictions, files.predictions)
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        from datasets import Dataset

        from ...analysis.attention_report import AnalysisData

        full = self._read(options)
        data = full.first(limit)

        def encode(tokenizer, max_length: int) -> Dataset:  # one row per sentence: the attention only
            encoded = tokenizer(data.words, is_split_into_words=True, truncation=True, max_length=max_length)
            return Dataset.from_dict(dict(encoded))

        return AnalysisData(
            source=data.source,
            layout=data.layout,
            available=len(full),
            text_a=[" ".join(words) for words in data.words],
            text_b=None,
            encode=encode,
        )


TOKEN_CLASSIFICATION = TokenClassificationTask()
