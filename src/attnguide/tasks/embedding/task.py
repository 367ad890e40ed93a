"""The embedding task: a sentence-transformers bi-encoder, scored with the Spearman correlation of
its cosine similarities with the dev scores.

``EMBEDDING`` is the task object of ``tasks.protocol``; the work is done in ``run`` (training with
sentence-transformers' trainer), ``evaluation`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...training.options import TrainOptions
from ..pairs.data import SCORE_FORMATS
from ..protocol import TaskOption
from ..readers import Columns
from ..regression.task import LABEL_RANGE
from .options import EMBEDDING_LOSSES, EmbeddingOptions

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from ...training.pipeline import TaskRun


EMBEDDING_METRICS = ("spearman", "pearson")


class EmbeddingTask:
    """Embedding texts: a bi-encoder trained with sentence-transformers."""

    name = "embedding"
    help = "a sentence-transformers bi-encoder, scored with the Spearman correlation of cosines"
    metrics = EMBEDDING_METRICS
    formats = SCORE_FORMATS
    format_option = "format"
    takes_columns = True
    options = (
        LABEL_RANGE,
        TaskOption(
            "--embedding-loss",
            {
                "default": "auto",
                "choices": tuple(EMBEDDING_LOSSES),
                "help": "; ".join(f"{k}: {v}" for k, v in EMBEDDING_LOSSES.items()),
            },
            ("train",),
        ),
        TaskOption(
            "--positive-label",
            {"help": "train on the labelled pairs with this label as (anchor, positive), e.g. ENTAILMENT"},
            ("train",),
        ),
    )

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> EmbeddingOptions:
        from ..regression.task import label_range_of

        return EmbeddingOptions(
            **common,
            format=args.format,
            columns=Columns.from_args(args),
            label_range=label_range_of(args),
            embedding_loss=args.embedding_loss,
            positive_label=args.positive_label,
        )

    def start(self, options: TrainOptions) -> TaskRun:
        from .run import EmbeddingRun

        return EmbeddingRun(options)

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import load_sentence_transformer, load_tokenizer
        from ..evaluation import EvalFiles, trained_guide
        from ..regression.data import check_scores_vary, read_scored
        from ..regression.task import label_range_of
        from .evaluation import evaluate_embedding, prediction_rows

        files = EvalFiles.checked(args)
        data = check_scores_vary(
            read_scored(args.data, args.format, Columns.from_args(args), label_range_of(args))
        )
        model = load_sentence_transformer(args.model, args.max_length)
        tokenizer = load_tokenizer(args.model)
        guide = trained_guide(args.model)
        evaluation = evaluate_embedding(model, tokenizer, data, args.max_length, guide, args.batch_size)
        write_jsonl(files.predictions, prediction_rows(data, evaluation))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        from datasets import Dataset

        from ...analysis.attention_report import AnalysisData
        from ..regression.data import read_scored

        full = read_scored(args.data, args.format, Columns.from_args(args))
        pairs = full.pairs.first(limit)

        def encode(tokenizer, max_length: int) -> Dataset:  # each text on its own, as a bi-encoder reads it
            return Dataset.from_dict(dict(tokenizer(pairs.text_a, truncation=True, max_length=max_length)))

        return AnalysisData(pairs.source, pairs.layout, len(full), pairs.text_a, None, encode)


EMBEDDING = EmbeddingTask()
