"""The classification task: labelled sentence pairs (or single sentences) in, accuracy out.

``CLASSIFICATION`` is the task object of ``tasks.protocol``; the work is done in ``run`` (training),
``evaluation`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...training.options import TrainOptions
from ..pairs.data import FORMATS
from ..protocol import TaskOption
from ..readers import Columns
from .metrics import CLASSIFICATION_METRICS
from .options import ClassificationOptions

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from ...training.pipeline import TaskRun


class ClassificationTask:
    """Pair classification: a sequence classifier with one output per label."""

    name = "classification"
    help = "classification of pairs (default)"
    metrics = CLASSIFICATION_METRICS
    formats = FORMATS
    format_option = "format"
    takes_columns = True
    options: tuple[TaskOption, ...] = ()

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> ClassificationOptions:
        return ClassificationOptions(**common, format=args.format, columns=Columns.from_args(args))

    def start(self, options: TrainOptions) -> TaskRun:
        from .run import ClassificationRun

        return ClassificationRun(options)

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import check_max_length, load_model, load_tokenizer
        from ..evaluation import EvalFiles, trained_guide
        from ..pairs.data import read_pairs
        from ..pairs.encoding import encode_pairs
        from .evaluation import evaluate, prediction_rows

        files = EvalFiles.checked(args)
        data = read_pairs(args.data, args.format, Columns.from_args(args))
        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, attn_implementation="eager")
        check_max_length(args.model, model, tokenizer, args.max_length)
        dataset = encode_pairs(data, tokenizer, args.max_length, model.config.label2id)
        evaluation = evaluate(model, tokenizer, dataset, trained_guide(args.model), args.batch_size)
        write_jsonl(files.predictions, prediction_rows(data, evaluation, model.config.id2label))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from ..pairs.data import read_pairs
        from ..pairs.encoding import encode_pairs

        full = read_pairs(args.data, args.format, Columns.from_args(args))
        data = full.first(limit)
        return AnalysisData(
            source=data.source,
            layout=data.layout,
            available=len(full),
            text_a=data.text_a,
            text_b=data.text_b,
            encode=lambda tokenizer, max_length: encode_pairs(data, tokenizer, max_length),
        )


CLASSIFICATION = ClassificationTask()
