"""The tasks attnguide trains and evaluates, one sub-package each, and the registry the commands
dispatch on. ``protocol`` says what a task provides; ``readers`` holds what their readers share,
``eval_pass`` and ``eval_files`` what their evaluations share; each task's run is a
``training.training_run.TrainingRun``.

Importing this package is light: a task's heavy modules load when a command uses them.
"""

from __future__ import annotations

from ..errors import AttnguideError
from .classification.task import CLASSIFICATION
from .embedding.task import EMBEDDING
from .protocol import Task
from .ranking.task import RANKING
from .regression.task import REGRESSION
from .token_classification.task import TOKEN_CLASSIFICATION

TASKS: dict[str, Task] = {}
"""The registered tasks by name, the default first."""

DEFAULT_TASK = "classification"
"""The task of a command without ``--task`` (and of runs written before there were others)."""


def register_task(task: Task) -> Task:
    """Add a task to the registry (its name must be new)."""
    if task.name in TASKS:
        raise AttnguideError(f"cannot register task {task.name!r}: the name is taken")
    TASKS[task.name] = task
    return task


def get_task(name: str | None) -> Task:
    """The task called ``name`` (None: the default)."""
    name = name or DEFAULT_TASK
    if name not in TASKS:
        raise AttnguideError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


register_task(CLASSIFICATION)
register_task(RANKING)
register_task(REGRESSION)
register_task(TOKEN_CLASSIFICATION)
register_task(EMBEDDING)

__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "register_task"]
