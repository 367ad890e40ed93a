"""What a task is: the protocol every task sub-package implements, and its typed options.

A task (``classification``, ``ranking``) is one object that says what its data looks like and how to
read it (its options classes and ``formats``), which measures ``compare`` may choose a setting by
(``metrics``, the first being the default), how to train (``start`` gives the ``TrainingRun`` of a
run), how to evaluate a file (``evaluate_file``) and which examples ``analyze`` looks at
(``analysis_data``). ``train``, ``eval``, ``compare`` and ``analyze`` call only these.
``docs/ARCHITECTURE.md`` says how to add one.

Options are dataclasses: ``train_options`` extends ``TrainOptions`` with the task's own fields, each
made by ``training.options.option`` (its flag, help and the commands that take it);
``eval_options`` (``eval_options_class``) holds what ``eval`` and ``analyze`` read. The command line
makes its flags from these fields.

A task's module is imported when the command line is built, so it imports nothing heavy at its top:
the work is done by modules it imports inside its methods.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, make_dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..training.options import TrainOptions, option

if TYPE_CHECKING:
    from ..analysis.attention_report import AnalysisData
    from ..training.training_run import TrainingRun


@dataclass
class EvalOptions:
    """What ``attnguide eval`` takes for every task (and ``analyze`` reads a data file with): the
    model, the data file, where the predictions go, and how to batch and truncate."""

    model: str = option(required=True, help="a run directory written by attnguide train")
    data: str = option(required=True, help="data file to evaluate on")
    output: str | None = option(
        None, help="per-example predictions, JSON lines (default: <data name>.predictions.jsonl here)"
    )
    batch_size: int = option(64)
    max_length: int = option(128)


def eval_options_class(
    name: str, train_options: type[TrainOptions], *extra: tuple[str, Any, Field]
) -> type[EvalOptions]:
    """A task's eval options: ``EvalOptions``, the fields of its ``train_options`` that ``eval``
    takes (declared once, there), and ``extra`` fields of ``eval`` only, as (name, type, option)."""
    taken = [
        (f.name, f.type, field(default=f.default, default_factory=f.default_factory, metadata=f.metadata))
        for f in task_fields(train_options)
        if "eval" in f.metadata["cli"]["commands"]
    ]
    return make_dataclass(name, [*taken, *extra], bases=(EvalOptions,))


def task_fields(options: type) -> list[Field]:
    """The fields an options class adds to ``TrainOptions`` or ``EvalOptions``: the task's own."""
    shared = {f.name for base in (TrainOptions, EvalOptions) for f in fields(base)}
    return [f for f in fields(options) if f.name not in shared]


class Task(Protocol):
    """One kind of run, as ``attnguide train --task NAME`` and the other commands take it."""

    name: str
    help: str
    metrics: tuple[str, ...]
    """The measures of its metrics.json that ``compare`` may choose by (higher is better); the
    first is the default."""
    formats: tuple[str, ...]
    format_option: str
    """The field of its options that names the data layout: ``format``, ..."""
    train_options: type[TrainOptions]
    """Its training options: ``TrainOptions`` and its own fields (each its flag)."""
    eval_options: type[EvalOptions]
    """Its options of ``eval`` and ``analyze`` (``eval_options_class``)."""

    def start(self, options: TrainOptions) -> TrainingRun:
        """The task's steps of one training run."""

    def evaluate_file(self, options: EvalOptions) -> dict[str, float]:
        """``attnguide eval``: evaluate ``options.model`` on ``options.data``, write the predictions
        (``options.output``) and metrics, and return the metrics."""

    def analysis_data(self, options: EvalOptions, limit: int) -> AnalysisData:
        """``attnguide analyze``: the first ``limit`` examples of ``options.data`` (all with 0)."""


def own_options(task: Task) -> list[Field]:
    """The task's own options, its training ones first, each once: those its command-line flags are
    made from (``cli/flags.py``)."""
    taken = task_fields(task.train_options)
    names = {f.name for f in taken}
    return taken + [f for f in task_fields(task.eval_options) if f.name not in names]
