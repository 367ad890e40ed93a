"""The regression task: sentence pairs with a numeric score, scored with Pearson and Spearman.

``REGRESSION`` is the task object of ``tasks.protocol`` and ``RegressionOptions`` its training
options; the work is done in ``run`` (training and evaluation) and ``pairs.scored_pairs``, imported
when a command needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import AttnguideError
from ...training.options import TrainOptions, option
from ..pairs.data import SCORE_FORMATS
from ..pairs.scored_pairs import check_label_range, label_range_option
from ..protocol import EvalOptions, eval_options_class
from ..readers import Columns

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from .run import RegressionRun

REGRESSION_METRICS = ("pearson", "spearman")
"""The measures ``compare`` may choose by (higher is better): Pearson's r (the default) and
Spearman's rho. ``mse`` is reported too."""

LOSSES = ("mse", "bce")


@dataclass
class RegressionOptions(TrainOptions):
    """Every setting of a regression run: those of ``TrainOptions``, the layout, the named columns
    (``label``: the score), ``label_range``: the scores' bounds, to train on scores scaled to 0-1
    (predictions are scaled back), and ``regression_loss``: ``bce`` (the default), binary cross-entropy
    of the output's sigmoid against the scaled scores (without ``label_range``, the training scores'
    lowest and highest value are the bounds), or ``mse`` on the output as it is."""

    format: str = option("auto")
    columns: Columns = option(default_factory=Columns)
    label_range: tuple[float, float] | None = label_range_option()
    regression_loss: str = option(
        "bce",
        choices=LOSSES,
        help="bce (default): binary cross-entropy of the output's sigmoid against the scores "
        "scaled to 0-1 by --label-range, else by the training scores' lowest and highest value "
        "(sentence-transformers' recipe for cross-encoders on scores); mse: mean squared error "
        "of the output",
        commands=("train",),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in SCORE_FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(SCORE_FORMATS)}, got {self.format!r}")
        check_label_range(self.label_range)
        if self.regression_loss not in LOSSES:
            raise AttnguideError(
                f"--regression-loss must be one of {', '.join(LOSSES)}, got {self.regression_loss!r}"
            )


class RegressionTask:
    """Scoring pairs: a one-output head, mean squared error."""

    name = "regression"
    help = "a score per pair (similarity, relatedness), scored with Pearson and Spearman"
    metrics = REGRESSION_METRICS
    formats = SCORE_FORMATS
    format_option = "format"
    train_options = RegressionOptions
    eval_options = eval_options_class("RegressionEvalOptions", RegressionOptions)

    def start(self, options: RegressionOptions) -> RegressionRun:
        from .run import RegressionRun

        return RegressionRun(options)

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import check_max_length, load_model, load_tokenizer
        from ...rundir import read_run
        from ..eval_files import EvalFiles, trained_guide, trained_options
        from ..pairs.scored_pairs import check_scores_vary, read_scored
        from .run import evaluate_scores, outputs_logits, prediction_rows

        files = EvalFiles.checked(options)
        check_label_range(options.label_range)
        trained = trained_options(options.model)
        label_range = options.label_range or (
            tuple(trained["label_range"]) if trained.get("label_range") else None
        )
        # a range taken from the training scores scales the output; it does not refuse other scores
        from_train = options.label_range is None and (read_run(options.model) or {}).get(
            "label_range_from"
        ) == ("training data")
        checked_range = None if from_train else label_range
        data = check_scores_vary(read_scored(options.data, options.format, options.columns, checked_range))
        if from_train and label_range is not None:
            outside = sum(not label_range[0] <= score <= label_range[1] for score in data.scores)
            if outside:
                logging.getLogger("attnguide").warning(
                    "%s: %d scores outside %g to %g, the training scores' range, which bounds every "
                    "prediction of this model", options.data, outside, *label_range,
                )  # fmt: skip
        tokenizer = load_tokenizer(options.model)
        model = load_model(options.model, attn_implementation="eager", problem_type="regression")
        check_max_length(options.model, model, tokenizer, options.max_length)
        guide = trained_guide(options.model)
        sigmoid = outputs_logits(trained.get("regression_loss"))
        evaluation = evaluate_scores(
            model, tokenizer, data, options.max_length, label_range, guide, options.batch_size, sigmoid
        )
        write_jsonl(files.predictions, prediction_rows(data, evaluation))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from ..pairs.encoding import encode_pairs
        from ..pairs.scored_pairs import read_scored

        full = read_scored(options.data, options.format, options.columns)
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
