"""The ranking task: a cross-encoder reranker of (query, document) pairs, scored with MAP, MRR, ...

``RANKING`` is the task object of ``tasks.protocol``; the work is done in ``run`` (training),
``evaluation``, ``scoring`` and ``data``, imported when a command needs them.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from ...errors import AttnguideError
from ...training.options import TrainOptions
from ..protocol import TaskOption
from .data import RANKING_FORMATS
from .metrics import MEASURES
from .options import ENCODERS, RANKING_LOSSES, RankingOptions, check_run_tag

if TYPE_CHECKING:
    from ...analysis.attention_report import AnalysisData
    from ...training.pipeline import TaskRun

logger = logging.getLogger("attnguide")

_TRAIN, _EVAL = ("train",), ("eval",)


class RankingTask:
    """Reranking: (query, document) pairs scored by one output, trained pointwise or listwise."""

    name = "ranking"
    help = "a reranker (cross-encoder, or bi-encoder with --encoder bi) scored with MAP, MRR"
    metrics = MEASURES
    formats = RANKING_FORMATS
    format_option = "ranking_format"
    takes_columns = False
    options = (
        TaskOption("--queries", {"help": "trec layout: queries TSV (qid<TAB>text)"}),
        TaskOption(
            "--docs", {"help": "trec layout: documents TSV (docid<TAB>text) or JSONL (docid/_id, text)"}
        ),
        TaskOption(
            "--keep-unanswerable",
            {
                "action": "store_true",
                "help": "count queries without a relevant document as 0 in the averages "
                "(default: leave them out)",
            },
            ("train", "eval"),
        ),
        TaskOption(
            "--train-run",
            {"help": "trec layout: candidate run to train on (default: the judged documents)"},
            _TRAIN,
        ),
        TaskOption("--dev-run", {"help": "trec layout: candidate run of the dev queries to rerank"}, _TRAIN),
        TaskOption(
            "--encoder",
            {
                "default": "cross",
                "choices": ENCODERS,
                "help": "cross: a cross-encoder scores each (query, document) pair (default); bi: a "
                "sentence-transformers bi-encoder embeds each and ranks by cosine, trained with the "
                "multiple-negatives ranking loss, the query's irrelevant documents as hard negatives",
            },
            _TRAIN,
        ),
        TaskOption(
            "--ranking-loss",
            {
                "default": "pointwise",
                "choices": tuple(RANKING_LOSSES),
                "help": "pointwise binary cross-entropy on pairs (default), or listwise softmax "
                "cross-entropy over one relevant and --negatives irrelevant documents of a query",
            },
            _TRAIN,
        ),
        TaskOption(
            "--negatives",
            {"type": int, "default": 7, "help": "irrelevant documents per listwise group (default: 7)"},
            _TRAIN,
        ),
        TaskOption(
            "--run-tag",
            {"default": "attnguide", "help": "tag column of the TREC run written (default: attnguide)"},
            ("train", "eval"),
        ),
        TaskOption(
            "--run", {"help": "trec layout: candidate run to rerank (default: the judged documents)"}, _EVAL
        ),
        TaskOption(
            "--output-run",
            {
                "help": "TREC run file to write (default: the --output path with the suffix .run); it must "
                "differ from the predictions, the metrics (the --output path with the suffix "
                ".metrics.json) and the inputs"
            },
            _EVAL,
        ),
    )

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> RankingOptions:
        options = RankingOptions(
            **common,
            ranking_format=args.ranking_format,
            queries=args.queries,
            docs=args.docs,
            train_run=args.train_run,
            dev_run=args.dev_run,
            encoder=args.encoder,
            ranking_loss=args.ranking_loss,
            negatives=args.negatives,
            keep_unanswerable=args.keep_unanswerable,
            run_tag=args.run_tag,
        )
        logger.info("task: ranking (%s loss)", options.ranking_loss)
        return options

    def start(self, options: TrainOptions) -> TaskRun:
        if options.encoder == "bi":
            from .bi_run import BiEncoderRankingRun

            return BiEncoderRankingRun(options)
        from .run import RankingRun

        return RankingRun(options)

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        from pathlib import Path

        from ...files import write_jsonl, write_text
        from ...models import load_model, load_sentence_transformer, load_tokenizer
        from ..evaluation import EvalFiles, trained_guide
        from .bi_encoder import evaluate_bi_encoder, is_sentence_transformer
        from .data import read_ranking
        from .encoding import encode_candidates
        from .evaluation import evaluate_ranking
        from .scoring import prediction_rows, trec_run_text

        check_run_tag(args.run_tag)

        def output_run(predictions: Path) -> Path:
            return Path(args.output_run) if args.output_run else predictions.with_suffix(".run")

        inputs = {"--queries": args.queries, "--docs": args.docs, "--run": args.run}
        files = EvalFiles.checked(args, more=lambda p: {"the TREC run": output_run(p)}, inputs=inputs)
        data = read_ranking(args.data, args.ranking_format, args.queries, args.docs, args.run)
        tokenizer = load_tokenizer(args.model)
        guide = trained_guide(args.model)
        if is_sentence_transformer(args.model):  # a bi-encoder: trained with --encoder bi, or zero-shot
            model = load_sentence_transformer(args.model, args.max_length)
            evaluation = evaluate_bi_encoder(
                model, tokenizer, data, args.max_length, guide, args.batch_size, args.keep_unanswerable
            )
        else:
            model = load_model(args.model)
            if model.config.num_labels != 1:
                raise AttnguideError(
                    f"{args.model}: a reranker has one output, this model has {model.config.num_labels} "
                    "(train one with attnguide train --task ranking)"
                )
            encoded = encode_candidates(data, tokenizer, args.max_length)
            evaluation = evaluate_ranking(
                model, tokenizer, data, encoded, guide, args.batch_size, args.keep_unanswerable
            )
        write_jsonl(files.predictions, prediction_rows(data, evaluation.run))
        write_text(output_run(files.predictions), trec_run_text(evaluation.run, args.run_tag))
        logger.info("TREC run written to %s", output_run(files.predictions))
        return files.write_metrics(evaluation.metrics)

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        from ...analysis.attention_report import AnalysisData
        from .data import read_ranking
        from .encoding import encode_candidates

        full = read_ranking(args.data, args.ranking_format, args.queries, args.docs)
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
