"""What the subcommands share: the task a command is for (``chosen_task``, refusing other tasks'
options), the guide options (generated from the guide registry), and small helpers.

Everything here is light: parsing and checking arguments imports no torch, transformers, datasets
or matplotlib.
"""

from __future__ import annotations

import argparse
import logging

from ..errors import AttnguideError
from ..guiding.config import CAPTURES, PROFILE_KINDS, SCOPES, GuideConfig
from ..guiding.registry import GUIDES, guide_settings
from ..rundir import read_run
from ..tasks import DEFAULT_TASK, TASKS, Task, get_task
from .flags import dest_flag, task_dests

logger = logging.getLogger("attnguide")


def chosen_task(args: argparse.Namespace) -> Task:
    """The task of ``--task`` (default: the task a run directory given as ``--model`` was trained
    for, else the default task), after refusing options that belong only to other tasks."""
    name = args.task
    model = getattr(args, "model", None)
    if name is None and args.command in ("eval", "analyze") and model is not None:
        trained = (read_run(model) or {}).get("task")
        if trained in TASKS and trained != DEFAULT_TASK:
            logger.info("task: %s (the model in %s was trained with --task %s)", trained, model, trained)
            name = trained
    task = get_task(name)
    others: dict[str, list[str]] = {}  # flag given -> the tasks it belongs to
    own = task_dests(task)
    for other in TASKS.values():
        for dest in task_dests(other):
            given = getattr(args, dest, None)
            if dest not in own and given is not None and given != args.command_parser.get_default(dest):
                others.setdefault(dest_flag(dest), []).append(other.name)
    if others:
        owners = sorted({name for names in others.values() for name in names})
        listed = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
        raise AttnguideError(
            f"{'/'.join(others)} describe {listed} data; with --task {task.name} use "
            f"{dest_flag(task.format_option)}"
        )
    layout = getattr(args, task.format_option)
    if layout not in task.formats:
        raise AttnguideError(
            f"{dest_flag(task.format_option)} {layout!r}: --task {task.name} reads {', '.join(task.formats)}"
        )
    return task


def add_guide_options(parser: argparse.ArgumentParser) -> None:
    """The guiding options: ``--guide``, each registered guide's settings, and where guiding applies."""
    g = parser.add_argument_group("guiding")
    g.add_argument(
        "--guide", default="none", help=f"none or a '+'-joined choice of {', '.join(GUIDES)} (default: none)"
    )
    for setting in guide_settings():
        kind = float if setting.minimum is not None else str
        g.add_argument(setting.flag, type=kind, default=setting.default, help=setting.help)
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
        help="head profile: received (docs/METHOD.md) or released-code (reproduces the released code; "
        "no signal)",
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


def guide_config(args: argparse.Namespace) -> GuideConfig:
    """The ``GuideConfig`` of the guiding options."""
    return GuideConfig(
        guides=args.guide,
        layers=args.layers,
        scope=args.scope,
        profile=args.profile,
        warmup_steps=args.guide_warmup_steps,
        capture=args.capture,
        **{s.name: getattr(args, s.name) for s in guide_settings()},
    )


def quiet_libraries() -> None:
    """Keep transformers' own logging and progress bars out of the output (imports transformers:
    called by the commands that load models, once their arguments are checked)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def positive(args: argparse.Namespace, *names: str) -> None:
    """Refuse ``--NAME`` values below 1 in one line."""
    for name in names:
        if getattr(args, name) < 1:
            raise AttnguideError(f"--{name.replace('_', '-')} must be at least 1")
