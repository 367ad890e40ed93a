"""The ``attnguide`` command line: train, eval, demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from .analyze import add_parser as _add_analyze
from .compare import add_parser as _add_compare
from .config import CAPTURES, GUIDES, SCOPES, GuideConfig
from .data import FORMATS
from .errors import AttnguideError
from .patterns import DEFAULT_SPREAD
from .profiles import PROFILE_KINDS
from .ranking import cli as ranking_cli

logger = logging.getLogger("attnguide")


def _add_data_columns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", default="auto", choices=FORMATS, help="data layout (default: detect from the file)"
    )
    parser.add_argument(
        "--text-a", help="column of the first text (generic csv/tsv/jsonl, or to override a layout)"
    )
    parser.add_argument("--text-b", help="column of the second text, if any")
    parser.add_argument("--label", help="column of the label")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune an encoder classifier, with or without attention guiding")
    p.add_argument("--model", help="model directory or Hub id (default: the packaged MiniLM-L6-H384)")
    p.add_argument("--train", help="training data file")
    p.add_argument("--dev", help="dev data file: evaluated each epoch and at the end")
    p.add_argument(
        "--dataset", help="a HuggingFace dataset name or a local directory saved with save_to_disk"
    )
    p.add_argument("--train-split", default="train", help="split of --dataset to train on (default: train)")
    p.add_argument("--dev-split", help="split of --dataset to evaluate on, e.g. validation")
    _add_data_columns(p)
    g = p.add_argument_group("guiding")
    g.add_argument(
        "--guide", default="none", help=f"none or a '+'-joined choice of {', '.join(GUIDES)} (default: none)"
    )
    g.add_argument("--mdg-weight", type=float, default=1e-3, help="weight α of the MDG loss (default: 0.001)")
    g.add_argument("--pdg-weight", type=float, default=1e-3, help="weight β of the PDG loss (default: 0.001)")
    g.add_argument(
        "--pattern-weight", type=float, default=1.0, help="weight of pattern guidance (default: 1)"
    )
    g.add_argument(
        "--pattern-spread",
        default=DEFAULT_SPREAD,
        help=f"heads per pattern in each layer, in order (default: {DEFAULT_SPREAD})",
    )
    g.add_argument(
        "--disagreement-weight",
        type=float,
        default=1.0,
        help="weight of disagreement regularisation (default: 1)",
    )
    g.add_argument("--temperature", type=float, default=2.0, help="MDG temperature τ (default: 2.0)")
    g.add_argument(
        "--layers", default="all", help="guided layers: all, last:K, or indices like 0,3,5 (default: all)"
    )
    g.add_argument(
        "--scope", default="joint", choices=SCOPES, help="discriminate heads jointly or within each layer"
    )
    g.add_argument(
        "--profile",
        default="received",
        choices=PROFILE_KINDS,
        help="head profile: received (SPEC) or released-code (reproduces the released code; no signal)",
    )
    g.add_argument(
        "--guide-warmup-steps", type=int, default=0, help="ramp the guiding weights up over N steps"
    )
    g.add_argument(
        "--capture",
        default="auto",
        choices=CAPTURES,
        help="how attention profiles are taken: efficient (beside the fast kernel, no n×n maps kept), "
        "output-attentions (eager maps), or auto (efficient where the model allows it; default)",
    )
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--eval-batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--warmup-ratio", type=float, default=0.1)
    t.add_argument("--max-length", type=int, default=128, help="tokens per pair; longer pairs are truncated")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--logging-steps", type=int, default=20)
    t.add_argument("--report-to", default="none", help="Trainer loggers, e.g. tensorboard (default: none)")
    t.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs from Ampere on)")
    t.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute each layer in the backward pass instead of keeping its activations: less memory, "
        "about a third more time; the same result",
    )
    p.add_argument("--output-dir", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep the last checkpoint in the finished run"
    )
    r = p.add_argument_group("robustness")
    r.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its newest checkpoint"
    )
    r.add_argument("--save-steps", type=int, help="checkpoint every N steps (default: every epoch)")
    r.add_argument(
        "--sampling",
        default="random",
        choices=("random", "sequential", "group_by_length"),
        help="order of training examples (default: random, seeded)",
    )
    r.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="skip a batch whose loss is NaN or infinite instead of stopping (one process only)",
    )
    ranking_cli.add_train_arguments(p)
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from .training import TrainOptions, run_training

    guide = GuideConfig(
        guides=args.guide,
        mdg_weight=args.mdg_weight,
        pdg_weight=args.pdg_weight,
        pattern_weight=args.pattern_weight,
        pattern_spread=args.pattern_spread,
        disagreement_weight=args.disagreement_weight,
        temperature=args.temperature,
        layers=args.layers,
        scope=args.scope,
        profile=args.profile,
        warmup_steps=args.guide_warmup_steps,
        capture=args.capture,
    )
    shared = _shared_train_options(args, guide)
    if ranking_cli.task_of(args) == "ranking":
        metrics = ranking_cli.train_ranking(args, shared)
    else:
        options = TrainOptions(
            **shared,
            format=args.format,
            text_a=args.text_a,
            text_b=args.text_b,
            label=args.label,
            train_split=args.train_split,
            dev_split=args.dev_split,
        )
        metrics = run_training(options)
    if metrics:  # empty on the non-main processes of a distributed run
        print(json.dumps(metrics, indent=2))
    return 0


def _shared_train_options(args: argparse.Namespace, guide: GuideConfig) -> dict[str, Any]:
    """The ``TrainOptions`` keyword arguments that every ``--task`` takes from the command line."""
    return {
        "output_dir": args.output_dir,
        "train": args.train,
        "dev": args.dev,
        "model": args.model,
        "dataset": args.dataset,
        "guide": guide,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_ratio": args.warmup_ratio,
        "max_length": args.max_length,
        "seed": args.seed,
        "logging_steps": args.logging_steps,
        "report_to": args.report_to,
        "bf16": args.bf16,
        "activation_checkpointing": args.activation_checkpointing,
        "save_steps": args.save_steps,
        "sampling": args.sampling,
        "nonfinite": "skip" if args.skip_nonfinite else "stop",
        "overwrite": args.overwrite,
        "resume": args.resume,
        "keep_checkpoints": args.keep_checkpoints,
    }


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model on a data file")
    p.add_argument("--model", required=True, help="a run directory written by attnguide train")
    p.add_argument("--data", required=True, help="data file to evaluate on")
    _add_data_columns(p)
    p.add_argument(
        "--output", help="per-example predictions, JSON lines (default: <data name>.predictions.jsonl here)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    ranking_cli.add_eval_arguments(p)
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    if ranking_cli.task_of(args) == "ranking":
        return ranking_cli.eval_ranking(args)
    from .data import read_pairs
    from .encoding import encode_pairs
    from .evaluation import evaluate
    from .io import check_output_files, predictions_path, write_json, write_jsonl
    from .models import check_max_length, load_classifier, load_tokenizer
    from .training import prediction_rows, saved_guide_config

    if args.batch_size < 1:
        raise AttnguideError("--batch-size must be at least 1")
    output = predictions_path(args.output, args.data)
    metrics = output.with_suffix(".metrics.json")
    check_output_files({"the predictions": output, "the metrics": metrics}, {"--data": args.data})
    data = read_pairs(args.data, args.format, text_a=args.text_a, text_b=args.text_b, label=args.label)
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model, attn_implementation="eager")
    check_max_length(args.model, model, tokenizer, args.max_length)
    dataset = encode_pairs(data, tokenizer, args.max_length, model.config.label2id)
    evaluation = evaluate(model, tokenizer, dataset, saved_guide_config(args.model), args.batch_size)
    write_jsonl(output, prediction_rows(data, evaluation, model.config.id2label))
    write_json(metrics, evaluation.metrics)
    logger.info("predictions written to %s", output)
    print(json.dumps(evaluation.metrics, indent=2))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="offline demo: template NLI data, MiniLM trained without and with MDG+PDG"
    )
    p.add_argument(
        "--output-dir", default="attnguide-demo", help="where to write (default: ./attnguide-demo)"
    )
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--train-size", type=int, default=1200, help="template training pairs (default: 1200)")
    p.add_argument("--epochs", type=float, default=2.0, help="epochs per run (default: 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    previous_demo = (Path(args.output_dir) / "summary.json").is_file()
    print(
        run_demo(
            args.output_dir,
            model=args.model,
            train_size=args.train_size,
            epochs=args.epochs,
            overwrite=args.overwrite or previous_demo,
        )
    )
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr with exit code 2, like every other attnguide error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"attnguide: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _OneLineParser(prog="attnguide", description="Fine-tune encoders with attention guiding.")
    _add_global_options(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_demo(sub)
    _add_analyze(sub)
    _add_compare(sub)
    for command in sub.choices.values():  # also after the subcommand; there, unset unless given
        _add_global_options(command, default=argparse.SUPPRESS)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks")
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )


def _configure_logging(quiet: bool) -> None:
    import transformers

    logging.basicConfig(format="attnguide: %(message)s", level=logging.WARNING)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``attnguide`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already reported in one line
        return int(stop.code or 0)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging(args.quiet)
    try:
        return args.func(args)
    except AttnguideError as error:
        if args.debug:
            raise
        print(f"attnguide: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnguide: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
