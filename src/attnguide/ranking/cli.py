"""The ranking side of ``attnguide train`` and ``attnguide eval`` (``--task ranking``).

``attnguide.cli`` adds these arguments to its subcommands and hands ranking runs over here; heavy
modules are imported only when a ranking command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import AttnguideError
from ..io import check_output_files, predictions_path
from .data import RANKING_FORMATS
from .losses import RANKING_LOSSES

logger = logging.getLogger("attnguide")

TASKS = ("classification", "ranking")


def _add_common(parser: argparse.ArgumentParser, task_help: str) -> argparse._ArgumentGroup:
    parser.add_argument("--task", choices=TASKS, help=task_help)
    group = parser.add_argument_group("ranking (with --task ranking)")
    group.add_argument(
        "--ranking-format",
        default="auto",
        choices=RANKING_FORMATS,
        help="answer-selection CSV (qtext,label,atext), cross-genre-ir CSV, or trec files "
        "(default: trec when --queries/--docs are given, else detected from the CSV header)",
    )
    group.add_argument("--queries", help="trec layout: queries TSV (qid<TAB>text)")
    group.add_argument(
        "--docs", help="trec layout: documents TSV (docid<TAB>text) or JSONL (docid/_id, text)"
    )
    group.add_argument(
        "--keep-unanswerable",
        action="store_true",
        help="count queries without a relevant document as 0 in the averages (default: leave them out)",
    )
    return group


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task`` and the ranking options of ``attnguide train``."""
    group = _add_common(
        parser, "classification of pairs (default) or ranking: a cross-encoder reranker scored with MAP, MRR"
    )
    group.add_argument(
        "--train-run", help="trec layout: candidate run to train on (default: the judged documents)"
    )
    group.add_argument("--dev-run", help="trec layout: candidate run of the dev queries to rerank")
    group.add_argument(
        "--ranking-loss",
        default="pointwise",
        choices=tuple(RANKING_LOSSES),
        help="pointwise binary cross-entropy on pairs (default), or listwise softmax cross-entropy over "
        "one relevant and --negatives irrelevant documents of a query",
    )
    group.add_argument(
        "--negatives", type=int, default=7, help="irrelevant documents per listwise group (default: 7)"
    )
    group.add_argument("--run-tag", default="attnguide", help="tag column of the TREC run written for dev")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task`` and the ranking options of ``attnguide eval``."""
    group = _add_common(
        parser, "classification or ranking (default: ranking for a model trained with --task ranking)"
    )
    group.add_argument("--run", help="trec layout: candidate run to rerank (default: the judged documents)")
    group.add_argument(
        "--output-run",
        help="TREC run file to write (default: the --output path with the suffix .run); it must differ "
        "from the predictions, the metrics (the --output path with the suffix .metrics.json) and the inputs",
    )
    group.add_argument(
        "--run-tag", default="attnguide", help="tag column of the TREC run (default: attnguide)"
    )


def _trained_task(model: str) -> str | None:
    """The ``task`` a run directory's run.json records (None for a plain model directory)."""
    try:
        return json.loads((Path(model) / "run.json").read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def task_of(args: argparse.Namespace) -> str:
    """``--task``; without it, eval takes the task the model was trained for, train classification."""
    if args.task is not None:
        return args.task
    if args.command == "eval" and _trained_task(args.model) == "ranking":
        logger.info("task: ranking (the model in %s was trained with --task ranking)", args.model)
        return "ranking"
    return "classification"


def _refuse_classification_columns(args: argparse.Namespace) -> None:
    if args.format != "auto" or any(getattr(args, name) for name in ("text_a", "text_b", "label")):
        raise AttnguideError(
            "--format/--text-a/--text-b/--label describe classification data; with --task ranking "
            "use --ranking-format"
        )


def train_ranking(args: argparse.Namespace, shared: dict[str, Any]) -> dict[str, float]:
    """``attnguide train --task ranking``: ``shared`` holds the options of every task; returns the metrics."""
    from ..training import run_training
    from .training import RankingOptions, RankingTask

    _refuse_classification_columns(args)
    options = RankingOptions(
        **shared,
        ranking_format=args.ranking_format,
        queries=args.queries,
        docs=args.docs,
        train_run=args.train_run,
        dev_run=args.dev_run,
        ranking_loss=args.ranking_loss,
        negatives=args.negatives,
        keep_unanswerable=args.keep_unanswerable,
        run_tag=args.run_tag,
    )
    logger.info("task: ranking (%s loss)", options.ranking_loss)
    return run_training(options, RankingTask(options))


def _eval_outputs(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """The predictions, metrics and TREC run files of ``eval``, checked before any work
    (``check_output_files``)."""
    output = predictions_path(args.output, args.data)
    metrics = output.with_suffix(".metrics.json")
    run = Path(args.output_run) if args.output_run else output.with_suffix(".run")
    inputs = {"--data": args.data, "--queries": args.queries, "--docs": args.docs, "--run": args.run}
    check_output_files({"the predictions": output, "the metrics": metrics, "the TREC run": run}, inputs)
    return output, metrics, run


def eval_ranking(args: argparse.Namespace) -> int:
    """``attnguide eval --task ranking``: writes predictions, metrics and a TREC run; prints the metrics."""
    from ..io import write_json, write_jsonl, write_text
    from ..models import load_classifier, load_tokenizer
    from ..training import saved_guide_config
    from .data import read_ranking
    from .encoding import encode_candidates
    from .evaluation import evaluate_ranking
    from .scoring import prediction_rows, trec_run_text

    _refuse_classification_columns(args)
    if args.batch_size < 1 or args.max_length < 1:
        raise AttnguideError("--batch-size and --max-length must be at least 1")
    if not args.run_tag or any(ch.isspace() for ch in args.run_tag):
        raise AttnguideError(f"--run-tag must be one word, got {args.run_tag!r}")
    output, metrics, output_run = _eval_outputs(args)
    data = read_ranking(args.data, args.ranking_format, args.queries, args.docs, args.run)
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model)
    if model.config.num_labels != 1:
        raise AttnguideError(
            f"{args.model}: a reranker has one output, this model has {model.config.num_labels} "
            "(train one with attnguide train --task ranking)"
        )
    encoded = encode_candidates(data, tokenizer, args.max_length)
    evaluation = evaluate_ranking(
        model,
        tokenizer,
        data,
        encoded,
        saved_guide_config(args.model),
        args.batch_size,
        args.keep_unanswerable,
    )
    write_jsonl(output, prediction_rows(data, evaluation.run))
    write_json(metrics, evaluation.metrics)
    write_text(output_run, trec_run_text(evaluation.run, args.run_tag))
    logger.info("predictions written to %s, TREC run to %s", output, output_run)
    print(json.dumps(evaluation.metrics, indent=2))
    return 0
