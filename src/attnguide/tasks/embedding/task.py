"""The embedding task: a sentence-transformers bi-encoder, scored with the Spearman correlation of
its cosine similarities with the dev scores.

``EMBEDDING`` is the task object of ``tasks.protocol`` and ``EmbeddingOptions`` its training
options; the work is done in ``run`` (training with sentence-transformers' trainer, evaluation) and
``data``, imported when a command needs them.
"""

from __future__ import annotations

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
    from .run import EmbeddingRun

EMBEDDING_METRICS = ("spearman", "pearson")

EMBEDDING_LOSSES = {
    "auto": "cosent for pairs with a score, mnrl for (anchor, positive) rows",
    "cosent": "CoSENTLoss: orders the pairs' cosine similarities as their scores",
    "cosine": "CosineSimilarityLoss: the squared error of each pair's cosine and its score, scaled to 0-1",
    "mnrl": "MultipleNegativesRankingLoss: each anchor's positive against the batch's other texts",
}


@dataclass
class EmbeddingOptions(TrainOptions):
    """Every setting of an embedding run: those of ``TrainOptions``, the layout and columns, the
    scores' range, the loss, and ``positive_label``: train on the labelled pairs that have it, as
    (anchor, positive) rows."""

    format: str = option("auto")
    columns: Columns = option(default_factory=Columns)
    label_range: tuple[float, float] | None = label_range_option()
    embedding_loss: str = option(
        "auto",
        choices=tuple(EMBEDDING_LOSSES),
        help="; ".join(f"{k}: {v}" for k, v in EMBEDDING_LOSSES.items()),
        commands=("train",),
    )
    positive_label: str | None = option(
        None,
        help="train on the labelled pairs with this label as (anchor, positive), e.g. ENTAILMENT",
        commands=("train",),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in SCORE_FORMATS:
            raise AttnguideError(f"--format must be one of {', '.join(SCORE_FORMATS)}, got {self.format!r}")
        if self.embedding_loss not in EMBEDDING_LOSSES:
            raise AttnguideError(f"--embedding-loss must be one of {', '.join(EMBEDDING_LOSSES)}")
        check_label_range(self.label_range)
        if self.lora_r is not None:
            raise AttnguideError("--task embedding trains every weight; --lora-r is for the other tasks")
        if self.dataset is not None:
            raise AttnguideError("--task embedding reads files: give --train FILE, not --dataset")


class EmbeddingTask:
    """Embedding texts: a bi-encoder trained with sentence-transformers."""

    name = "embedding"
    help = "a sentence-transformers bi-encoder, scored with the Spearman correlation of cosines"
    metrics = EMBEDDING_METRICS
    formats = SCORE_FORMATS
    format_option = "format"
    train_options = EmbeddingOptions
    eval_options = eval_options_class("EmbeddingEvalOptions", EmbeddingOptions)

    def start(self, options: EmbeddingOptions) -> EmbeddingRun:
        from .run import EmbeddingRun

        return EmbeddingRun(options)

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        from ...files import write_jsonl
        from ...models import load_sentence_transformer, load_tokenizer
        from ..eval_files import EvalFiles, trained_guide
        from ..pairs.scored_pairs import check_scores_vary, read_scored
        from .run import evaluate_embedding, prediction_rows

        files = EvalFiles.checked(options)
        check_label_range(options.label_range)
        data = check_scores_vary(
            read_scored(options.data, options.format, options.columns, options.label_range)
        )
        model = load_sentence_transformer(options.model, options.max_length)
        tokenizer = load_tokenizer(options.model)
        guide = trained_guide(options.model)
        evaluation = evaluate_embedding(model, tokenizer, data, options.max_length, guide, options.batch_size)
        write_jsonl(files.predictions, prediction_rows(data, evaluation))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        from datasets import Dataset

        from ...analysis.attention_report import AnalysisData
        from ..pairs.scored_pairs import read_scored

        full = read_scored(options.data, options.format, options.columns)
        pairs = full.pairs.first(limit)

        def encode(tokenizer, max_length: int) -> Dataset:  # each text on its own, as a bi-encoder reads it
            return Dataset.from_dict(dict(tokenizer(pairs.text_a, truncation=True, max_length=max_length)))

        return AnalysisData(pairs.source, pairs.layout, len(full), pairs.text_a, None, encode)


EMBEDDING = EmbeddingTask()
