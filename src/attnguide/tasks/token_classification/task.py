"""The token classification task: a tag for every word (named entities, BIO tags), scored with
entity-level F1.

``TOKEN_CLASSIFICATION`` is the task object of ``tasks.protocol``; the work is done in ``run``
(training), ``encoding``, ``evaluation`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..protocol import TaskOption
from ..readers import Columns
from .data import FORMATS
from .metrics import ENTITY_METRICS
from .options import TokenClassificationOptions

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from ...training.pipeline import TaskRun


class TokenClassificationTask:
    """Tagging words: a token classifier, its loss on each word's first sub-token."""

    name = "token-classification"
    help = "a tag per word (named entities), scored with entity F1"
    metrics = ENTITY_METRICS
    formats = FORMATS
    format_option = "format"
    takes_columns = True
    options = (
        TaskOption(
            "--stride",
            {
                "type": int,
                "default": 32,
                "help": "sub-tokens of overlap between the windows of a sentence longer than --max-length "
                "(default: 32)",
            },
            ("train", "eval"),
        ),
    )

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> TokenClassificationOptions:
        return TokenClassificationOptions(
            **common, format=args.format, columns=Columns.from_args(args), stride=args.stride
        )

    def start(self, options: TrainOptions) -> TaskRun:
        from .run import TokenClassificationRun

        return TokenClassificationRun(options)

    def _read(self, args: argparse.Namespace):
        from .data import read_tagged

        columns = Columns.from_args(args)
        if columns.text_b is not None:
            raise AttnguideError("--text-b: a tagged sentence has one text (its tokens, --text-a)")
        return read_tagged(args.data, args.format, columns)

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        from ...models import check_max_length, load_model, load_tokenizer
        from ..evaluation import EvalFiles, trained_guide
        from .data import check_known_tags, write_predictions
        from .encoding import encode_windows
        from .evaluation import evaluate_tags

        files = EvalFiles.checked(args, Path(args.data).suffix or ".txt")
        data = self._read(args)
        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, attn_implementation="eager", head="token")
        check_known_tags(data, list(model.config.id2label.values()))
        check_max_length(args.model, model, tokenizer, args.max_length)
        windows = encode_windows(data, tokenizer, args.max_length, stride=args.stride)
        guide = trained_guide(args.model)
        evaluation = evaluate_tags(model, tokenizer, data, windows, guide, args.batch_size)
        write_predictions(data, evaluation.predictions, files.predictions)
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        from datasets import Dataset

        from ...analysis.attention_report import AnalysisData

        full = self._read(args)
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
