"""Command-line flags made from the options dataclasses, and the dataclasses made from parsed flags.

Every option is declared once, as a field of ``TrainOptions``, ``EvalOptions``, ``Columns`` or a
task's options made by ``training.options.option`` (its help, flag, choices and the commands that
take it); here those fields become ``argparse`` flags, the way ``common.add_guide_options`` makes
the guide settings' flags from the guide registry.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

from ..tasks import TASKS, Task
from ..tasks.protocol import own_options
from ..tasks.readers import Columns
from ..training.options import flag_of

Options = TypeVar("Options")

_NOT_ARGPARSE = ("flag", "commands", "data_input")
_TYPES = {"int": int, "float": float}


def add_flag(
    container: argparse.ArgumentParser | argparse._ArgumentGroup, option: Field, **overrides: Any
) -> None:
    """The flag of one field made by ``option``, with ``argparse`` keywords from its metadata (its
    type from its annotation: int, float, or a switch for bool), ``overrides`` winning."""
    keywords = {k: v for k, v in option.metadata["cli"].items() if k not in _NOT_ARGPARSE}
    if option.default is not MISSING:
        keywords.setdefault("default", option.default)
    if "action" not in keywords and "type" not in keywords:
        kind = option.type.split(" | ")[0]
        if kind == "bool":
            keywords["action"] = "store_true"
        elif kind in _TYPES:
            keywords["type"] = _TYPES[kind]
    container.add_argument(flag_of(option), **{**keywords, **overrides})


def add_flags(
    container: argparse.ArgumentParser | argparse._ArgumentGroup,
    options: type,
    names: tuple[str, ...],
    **overrides: dict[str, Any],
) -> None:
    """The flags of the named fields of ``options``, in that order; ``overrides``: a field's name to
    ``argparse`` keywords that replace its own (``output_dir={"help": ...}``)."""
    by_name = {f.name: f for f in fields(options)}
    for name in names:
        add_flag(container, by_name[name], **overrides.get(name, {}))


def options_from_args(options: type[Options], args: argparse.Namespace, **given: Any) -> Options:
    """An options dataclass from parsed flags: each field from the flag of its name (a list, from
    ``nargs``, as a tuple), ``columns`` from the column flags, ``given`` values as they are, the
    others at their defaults."""
    values: dict[str, Any] = {}
    for option in fields(options):
        if option.name in given:
            values[option.name] = given[option.name]
        elif option.name == "columns":
            values["columns"] = Columns(**{name: getattr(args, name) for name in Columns.names()})
        elif hasattr(args, option.name):
            value = getattr(args, option.name)
            values[option.name] = tuple(value) if isinstance(value, list) else value
    return options(**values)


def dest_flag(dest: str) -> str:
    """The flag of an ``argparse`` destination (``ranking_format``: ``--ranking-format``)."""
    return "--" + dest.replace("_", "-")


def add_task_options(parser: argparse.ArgumentParser, command: str, task_help: str) -> None:
    """``--task``, the data layout and column options, and every task's own options for ``command``,
    each task's in a group of its own; a flag several tasks share is added once."""
    choices = ", ".join(f"{t.name}: {t.help}" for t in TASKS.values())
    parser.add_argument("--task", choices=tuple(TASKS), help=f"{task_help} ({choices})")
    data = parser.add_argument_group("data layout and columns")
    layouts: dict[str, list[Task]] = {}
    for task in TASKS.values():
        layouts.setdefault(task.format_option, []).append(task)
    for dest, tasks in layouts.items():
        listed = "; ".join(f"--task {t.name}: {', '.join(t.formats)}" for t in tasks)
        data.add_argument(dest_flag(dest), default="auto", help=f"data layout ({listed}; default: auto)")
    add_flags(data, Columns, Columns.names())
    added: set[str] = set()
    for task in TASKS.values():
        shared = (task.format_option, "columns", *added)
        own = [
            o for o in own_options(task) if command in o.metadata["cli"]["commands"] and o.name not in shared
        ]
        if own:
            group = parser.add_argument_group(f"{task.name} (with --task {task.name})")
            for option in own:
                add_flag(group, option)
                added.add(option.name)


def task_dests(task: Task) -> set[str]:
    """The options that only some tasks take, as this one's: its layout option, the data columns
    where it reads named columns, and its own options."""
    own = {o.name for o in own_options(task)} - {"columns"}
    takes_columns = any(o.name == "columns" for o in own_options(task))
    return own | {task.format_option} | (set(Columns.names()) if takes_columns else set())
