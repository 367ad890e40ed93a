"""The ranking task: a reranker of (query, document) pairs, a cross-encoder or a bi-encoder, scored
with MAP, MRR, ...

``RANKING`` is the task object of ``tasks.protocol`` and ``RankingOptions`` its training options;
the work is done in ``cross_encoder_run`` and ``bi_encoder_run`` (training and evaluation), ``data``,
``encoding`` and ``trec_runs``, imported when a command needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import AttnguideError
from ...training.options import TrainOptions, option
from ..protocol import EvalOptions, eval_options_class
from .data import RANKING_FORMATS
from .ranking_metrics import MEASURES

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from .ranking_run import RankingRun

logger = logging.getLogger("attnguide")

_TRAIN, _EVAL = ("train",), ("eval",)

ENCODERS = ("cross", "bi")
"""A cross-encoder scores each (query, document) pair; a bi-encoder embeds each on its own."""

RANKING_LOSSES = {
    "pointwise": "binary cross-entropy on pairs",
    "listwise": "softmax cross-entropy over one relevant and --negatives irrelevant documents of a query",
}
"""The ranking losses by name; loss ``NAME`` is ``ranking_losses.NAME_loss``."""


def check_run_tag(tag: str) -> None:
    """A TREC run's tag column is one word."""
    if not tag or any(ch.isspace() for ch in tag):
        raise AttnguideError(f"--run-tag must be one word, got {tag!r}")


@dataclass
class RankingOptions(TrainOptions):
    """Every setting of a ranking run: those of ``TrainOptions`` and the ranking ones.

    ``train``/``dev`` are CSV files, or qrels files of the trec layout (with ``queries``, ``docs``
    and optional candidate runs ``train_run``/``dev_run``). ``batch_size`` counts pairs: a listwise
    batch holds ``batch_size // (1 + negatives)`` groups (at least one). Says the loss it trains
    with in the log.
    """

    ranking_format: str = option("auto")
    queries: str | None = option(None, help="trec layout: queries TSV (qid<TAB>text)", data_input=True)
    docs: str | None = option(
        None, help="trec layout: documents TSV (docid<TAB>text) or JSONL (docid/_id, text)", data_input=True
    )
    keep_unanswerable: bool = option(
        False,
        help="count queries without a relevant document as 0 in the averages (default: leave them out)",
        commands=("train", "eval"),
    )
    train_run: str | None = option(
        None,
        help="trec layout: candidate run to train on (default: the judged documents)",
        commands=_TRAIN,
        data_input=True,
    )
    dev_run: str | None = option(
        None, help="trec layout: candidate run of the dev queries to rerank", commands=_TRAIN, data_input=True
    )
    encoder: str = option(
        "cross",
        choices=ENCODERS,
        help="cross: a cross-encoder scores each (query, document) pair (default); bi: a "
        "sentence-transformers bi-encoder embeds each and ranks by cosine, trained with the "
        "multiple-negatives ranking loss, the query's irrelevant documents as hard negatives",
        commands=_TRAIN,
    )
    ranking_loss: str = option(
        "pointwise",
        choices=tuple(RANKING_LOSSES),
        help="pointwise binary cross-entropy on pairs (default), or listwise softmax "
        "cross-entropy over one relevant and --negatives irrelevant documents of a query",
        commands=_TRAIN,
    )
    negatives: int = option(7, help="irrelevant documents per listwise group (default: 7)", commands=_TRAIN)
    run_tag: str = option(
        "attnguide",
        help="tag column of the TREC run written (default: attnguide)",
        commands=("train", "eval"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset is not None:
            raise AttnguideError("--task ranking reads files: give --train FILE, not --dataset")
        if self.ranking_format not in RANKING_FORMATS:
            raise AttnguideError(f"--ranking-format must be one of {', '.join(RANKING_FORMATS)}")
        if self.ranking_loss not in RANKING_LOSSES:
            raise AttnguideError(f"--ranking-loss must be one of {', '.join(RANKING_LOSSES)}")
        if self.encoder not in ENCODERS:
            raise AttnguideError(f"--encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.encoder == "bi" and (self.ranking_loss != "pointwise" or self.lora_r is not None):
            raise AttnguideError(
                "--encoder bi trains with the multiple-negatives ranking loss and every weight: "
                "--ranking-loss and --lora-r are for the cross-encoder"
            )
        if self.negatives < 1:
            raise AttnguideError(f"--negatives must be at least 1, got {self.negatives}")
        check_run_tag(self.run_tag)
        if self.dev_run is not None and self.dev is None:
            raise AttnguideError("--dev-run needs --dev, the qrels of the dev queries")
        if self.ranking_loss == "listwise" and self.sampling == "group_by_length":
            raise AttnguideError("--sampling group_by_length works with the pointwise loss only")
        logger.info("task: ranking (%s loss)", self.ranking_loss)


class RankingTask:
    """Reranking: (query, document) pairs scored by one output, trained pointwise or listwise."""

    name = "ranking"
    help = "a reranker (cross-encoder, or bi-encoder with --encoder bi) scored with MAP, MRR"
    metrics = MEASURES
    formats = RANKING_FORMATS
    format_option = "ranking_format"
    train_options = RankingOptions
    eval_options = eval_options_class(
        "RankingEvalOptions",
        RankingOptions,
        (
            "run",
            "str | None",
            option(
                None,
                help="trec layout: candidate run to rerank (default: the judged documents)",
                commands=_EVAL,
            ),
        ),
        (
            "output_run",
            "str | None",
            option(
                None,
                help="TREC run file to write (default: the --output path with the suffix .run); it must "
                "differ from the predictions, the metrics (the --output path with the suffix "
                ".metrics.json) and the inputs",
                commands=_EVAL,
            ),
        ),
    )

    def start(self, options: RankingOptions) -> RankingRun:
        if options.encoder == "bi":
            from .bi_encoder_run import BiEncoderRankingRun

            return BiEncoderRankingRun(options)
        from .cross_encoder_run import CrossEncoderRankingRun

        return CrossEncoderRankingRun(options)

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        from pathlib import Path

        from ...files import write_jsonl, write_text
        from ...models import load_model, load_sentence_transformer, load_tokenizer
        from ..eval_files import EvalFiles, trained_guide
        from .cosine_ranking import evaluate_bi_encoder, is_sentence_transformer
        from .cross_encoder_run import evaluate_ranking
        from .data import read_ranking
        from .encoding import encode_candidates
        from .trec_runs import prediction_rows, trec_run_text

        check_run_tag(options.run_tag)

        def output_run(predictions: Path) -> Path:
            return Path(options.output_run) if options.output_run else predictions.with_suffix(".run")

        inputs = {"--queries": options.queries, "--docs": options.docs, "--run": options.run}
        files = EvalFiles.checked(options, more=lambda p: {"the TREC run": output_run(p)}, inputs=inputs)
        data = read_ranking(options.data, options.ranking_format, options.queries, options.docs, options.run)
        tokenizer = load_tokenizer(options.model)
        guide = trained_guide(options.model)
        if is_sentence_transformer(options.model):  # a bi-encoder: trained with --encoder bi, or zero-shot
            model = load_sentence_transformer(options.model, options.max_length)
            evaluation = evaluate_bi_encoder(
                model,
                tokenizer,
                data,
                options.max_length,
                guide,
                options.batch_size,
                options.keep_unanswerable,
            )
        else:
            model = load_model(options.model)
            if model.config.num_labels != 1:
                raise AttnguideError(
                    f"{options.model}: a reranker has one output, this model has {model.config.num_labels} "
                    "(train one with attnguide train --task ranking)"
                )
            encoded = encode_candidates(data, tokenizer, options.max_length)
            evaluation = evaluate_ranking(
                model, tokenizer, data, encoded, guide, options.batch_size, options.keep_unanswerable
            )
        write_jsonl(files.predictions, prediction_rows(data, evaluation.run))
        write_text(output_run(files.predictions), trec_run_text(evaluation.run, options.run_tag))
        logger.info("TREC run written to %s", output_run(files.predictions))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from .data import read_ranking
        from .encoding import encode_candidates

        full = read_ranking(options.data, options.ranking_format, options.queries, options.docs)
        data = full.first(limit)
        return AnalysisData(
            source=data.source,
            layout=data.layout,
            available=len(full),
            text_a=[data.queries[c.qid] for c in data.candidates],
            text_b=[c.text for c in data.candidates],
            encode=lambda tokenizer, max_length: encode_candidates(data, tokenizer, max_length).dataset,
        )


RANKING = RankingTask()
