"""``attnguide analyze``: how a model's heads spread their attention on a data file, beside others."""

from __future__ import annotations

import argparse

from .common import chosen_task, quiet_libraries
from .flags import add_task_options, options_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="measure and plot how a model's attention heads spread attention on a data file"
    )
    p.add_argument("--model", help="model directory, run directory or Hub id (default: the packaged MiniLM)")
    p.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        default=[],
        metavar="MODEL",
        help="more models to set beside it",
    )
    p.add_argument(
        "--names", nargs="+", metavar="NAME", help="a short name per model, in order (default: folder names)"
    )
    p.add_argument("--data", required=True, help="data file whose examples the models run over")
    add_task_options(p, "analyze", "how to read --data (default: the task the model was trained for)")
    p.add_argument(
        "--limit", type=int, default=256, help="first N examples of the file (default: 256; 0: all)"
    )
    p.add_argument("--example", type=int, default=0, help="example whose profiles are drawn (default: 0)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="tokens per pair; longer pairs are truncated")
    p.add_argument(
        "--bertviz", metavar="FILE.html", help="also write bertviz's head view of the example (needs bertviz)"
    )
    p.add_argument("--output-dir", required=True, help="directory to write the analysis to")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.set_defaults(func=run, command_parser=p)


def run(args: argparse.Namespace) -> int:
    task = chosen_task(args)
    from ..analysis.attention_report import AnalyzeOptions, check_analysis, run_analysis, summary_table
    from ..models import default_model_path

    options = AnalyzeOptions(
        output_dir=args.output_dir,
        models=([args.model] if args.model else [default_model_path()]) + args.compare,
        names=args.names,
        limit=args.limit,
        example=args.example,
        batch_size=args.batch_size,
        max_length=args.max_length,
        bertviz=args.bertviz,
        overwrite=args.overwrite,
    )
    check_analysis(options, args.data)
    quiet_libraries()
    data = task.analysis_data(options_from_args(task.eval_options, args), options.limit)
    print(summary_table(run_analysis(options, data)))
    return 0
