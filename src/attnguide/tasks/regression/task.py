"""The regression task: sentence pairs with a numeric score, scored with Pearson and Spearman.

``REGRESSION`` is the task object of ``tasks.protocol``; the work is done in ``run`` (training),
``evaluation`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from ...training.options import TrainOptions
from ..pairs.data import SCORE_FORMATS
from ..protocol import TaskOption
from ..readers import Columns
from .metrics import REGRESSION_METRICS
from .options import LOSSES, RegressionOptions, check_label_range, outputs_logits

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from ...training.pipeline import TaskRun


def label_range_of(args: argparse.Namespace) -> tuple[float, float] | None:
    """``--label-range`` as a checked (low, high), or None."""
    label_range = tuple(args.label_range) if args.label_range is not None else None
    check_label_range(label_range)
    return label_range


LABEL_RANGE = TaskOption(
    "--label-range",
    {
        "type": float,
        "nargs": 2,
        "metavar": ("LOW", "HIGH"),
        "help": "the scores' bounds: train on scores scaled to 0-1 and refuse scores outside (default: "
        "the training scores' range, which scales but refuses nothing; with eval: the range the model "
        "was trained with, refusing scores outside it where it was given with --label-range)",
    },
)
"""``--label-range``, shared by the tasks that read scores."""


class RegressionTask:
    """Scoring pairs: a one-output head, mean squared error."""

    name = "regression"
    help = "a score per pair (similarity, relatedness), scored with Pearson and Spearman"
    metrics = REGRESSION_METRICS
    formats = SCORE_FORMATS
    format_option = "format"
    takes_columns = True
    options = (
        LABEL_RANGE,
        TaskOption(
            "--regression-loss",
            {
                "choices": LOSSES,
                "default": "bce",
                "help": "bce (default): binary cross-entropy of the output's sigmoid against the scores "
                "scaled to 0-1 by --label-range, else by the training scores' lowest and highest value "
                "(sentence-transformers' recipe for cross-encoders on scores); mse: mean squared error "
                "of the output",
            },
            ("train",),
        ),
    )

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> RegressionOptions:
        return RegressionOptions(
            **common,
            format=args.format,
            columns=Columns.from_args(args),
            label_range=label_range_of(args),
            regression_loss=args.regression_loss,
        )

    def start(self, options: TrainOptions) -> TaskRun:
        from .run import RegressionRun

        return RegressionRun(options)

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import check_max_length, load_model, load_tokenizer
        from ...rundir import read_run
        from ..evaluation import EvalFiles, trained_guide, trained_options
        from .data import check_scores_vary, read_scored
        from .evaluation import evaluate_scores, prediction_rows

        files = EvalFiles.checked(args)
        trained = trained_options(args.model)
        label_range = label_range_of(args) or (
            tuple(trained["label_range"]) if trained.get("label_range") else None
        )
        # a range taken from the training scores scales the output; it does not refuse other scores
        from_train = label_range_of(args) is None and (read_run(args.model) or {}).get(
            "label_range_from"
        ) == ("training data")
        checked_range = None if from_train else label_range
        data = check_scores_vary(read_scored(args.data, args.format, Columns.from_args(args), checked_range))
        if from_train and label_range is not None:
            outside = sum(not label_range[0] <= score <= label_range[1] for score in data.scores)
            if outside:
                logging.getLogger("attnguide").warning(
                    "%s: %d scores outside %g to %g, the training scores' range, which bounds every "
                    "prediction of this model", args.data, outside, *label_range,
                )  # fmt: skip
        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, attn_implementation="eager", problem_type="regression")
        check_max_length(args.model, model, tokenizer, args.max_length)
        guide = trained_guide(args.model)
        sigmoid = outputs_logits(trained.get("regression_loss"))
        evaluation = evaluate_scores(
            model, tokenizer, data, args.max_length, label_range, guide, args.batch_size, sigmoid
        )
        write_jsonl(files.predictions, prediction_rows(data, evaluation))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from ..pairs.encoding import encode_pairs
        from .data import read_scored

        full = read_scored(args.data, args.format, Columns.from_args(args))
        pairs = full.pairs.first(limit)
        return AnalysisData(
            source=pairs.source,
            layout=pairs.layout,
            available=len(full),
            text_a=pairs.text_a,
            text_b=pairs.text_b,
            encode=lambda tokenizer, max_length: encode_pairs(pairs, tokenizer, max_length),
        )


REGRESSION = RegressionTask()
