"""The classification task: labelled sentence pairs (or single sentences) in, accuracy out.

``CLASSIFICATION`` is the task object of ``tasks.protocol`` and ``ClassificationOptions`` its
training options; the work is done in ``run`` (training and evaluation), imported when a command
needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import AttnguideError
from ...training.options import TrainOptions, option
from ..pairs.data import FORMATS
from ..protocol import EvalOptions, eval_options_class
from ..readers import Columns

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from .run import ClassificationRun

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")


@dataclass
class ClassificationOptions(TrainOptions):
    """Every setting of a classification run: those of ``TrainOptions``, the data layout and the
    named columns."""

    format: str = option("auto")
    columns: Columns = option(default_factory=Columns)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")


class ClassificationTask:
    """Pair classification: a sequence classifier with one output per label."""

    name = "classification"
    help = "classification of pairs (default)"
    metrics = CLASSIFICATION_METRICS
    formats = FORMATS
    format_option = "format"
    train_options = ClassificationOptions
    eval_options = eval_options_class("ClassificationEvalOptions", ClassificationOptions)

    def start(self, options: ClassificationOptions) -> ClassificationRun:
        from .run import ClassificationRun

        return ClassificationRun(options)

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import check_max_length, load_model, load_tokenizer
        from ..eval_files import EvalFiles, trained_guide
        from ..pairs.data import read_pairs
        from ..pairs.encoding import encode_pairs
        from .run import evaluate, prediction_rows

        files = EvalFiles.checked(options)
        data = read_pairs(options.data, options.format, options.columns)
        tokenizer = load_tokenizer(options.model)
        model = load_model(options.model, attn_implementation="eager")
        check_max_length(options.model, model, tokenizer, options.max_length)
        dataset = encode_pairs(data, tokenizer, options.max_length, model.config.label2id)
        evaluation = evaluate(model, tokenizer, dataset, trained_guide(options.model), options.batch_size)
        write_jsonl(files.predictions, prediction_rows(data, evaluation, model.config.id2label))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from ..pairs.data import read_pairs
        from ..pairs.encoding import encode_pairs

        full = read_pairs(options.data, options.format, options.columns)
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
