"""What a task is: the protocol every task sub-package implements, and its command-line options.

A task (``classification``, ``ranking``) is one object that says what its data looks like and how to
read it (its ``options``, ``formats`` and ``columns``), which measures ``compare`` may choose a
setting by (``metrics``, the first being the default), how to train (``start`` gives the
``training.pipeline.TaskRun`` of a run), how to evaluate a file (``evaluate_file``) and which
examples ``analyze`` looks at (``analysis_data``). ``train``, ``eval``, ``compare`` and ``analyze``
call only these. ``docs/ARCHITECTURE.md`` says how to add one.

A task's module is imported when the command line is built, so it imports nothing heavy at its top:
the work is done by modules it imports inside its methods.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..analysis.attention_report import AnalysisData
    from ..training.options import TrainOptions
    from ..training.pipeline import TaskRun

COMMANDS = ("train", "eval", "analyze")


@dataclass(frozen=True)
class TaskOption:
    """A command-line option of one task: ``flag`` with ``argparse`` keywords, for ``commands``."""

    flag: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = COMMANDS

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


class Task(Protocol):
    """One kind of run, as ``attnguide train --task NAME`` and the other commands take it."""

    name: str
    help: str
    metrics: tuple[str, ...]
    """The measures of its metrics.json that ``compare`` may choose by (higher is better); the
    first is the default."""
    formats: tuple[str, ...]
    format_option: str
    """The option (and ``TrainOptions`` field) that names the data layout: ``format``, ..."""
    takes_columns: bool
    """Whether ``--text-a``, ``--text-b`` and ``--label`` (``readers.Columns``) apply."""
    options: tuple[TaskOption, ...]

    def train_options(self, args: argparse.Namespace, common: dict[str, Any]) -> TrainOptions:
        """The run's options: ``common`` (every task's) and this task's from ``args``."""

    def start(self, options: TrainOptions) -> TaskRun:
        """The task's steps of one training run."""

    def evaluate_file(self, args: argparse.Namespace) -> dict[str, float]:
        """``attnguide eval``: evaluate ``args.model`` on ``args.data``, write the predictions
        (``args.output``) and metrics, and return the metrics."""

    def analysis_data(self, args: argparse.Namespace, limit: int) -> AnalysisData:
        """``attnguide analyze``: the first ``limit`` examples of ``args.data`` (all with 0)."""
