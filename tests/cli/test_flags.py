"""The flags made from the options dataclasses: each option a flag, their defaults the same."""

from __future__ import annotations

import dataclasses
import re

import pytest

from attnguide.cli import build_parser
from attnguide.cli.common import chosen_task
from attnguide.cli.flags import options_from_args
from attnguide.cli.train import train_options
from attnguide.tasks import TASKS
from attnguide.tasks.protocol import own_options
from attnguide.training.options import flag_of


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("name", list(TASKS))
def test_a_task_s_options_from_default_flags_are_its_dataclass_defaults(name) -> None:
    args = parse("train", "--task", name, "--train", "t.csv", "--output-dir", "o")
    from_flags = train_options(chosen_task(args), args)
    # the one default that differs on purpose: the command line trains unguided without --guide
    assert from_flags.guide.to_dict()["guides"] == "none"
    assert from_flags == TASKS[name].train_options(output_dir="o", train="t.csv", guide=from_flags.guide)


@pytest.mark.parametrize("name", list(TASKS))
def test_every_own_option_is_a_flag_of_the_commands_it_names(name, capsys) -> None:
    task = TASKS[name]
    for command in ("train", "eval", "analyze"):
        with pytest.raises(SystemExit):
            parse(command, "--help")
        helped = capsys.readouterr().out
        for option in own_options(task):
            if option.name in (task.format_option, "columns"):
                continue
            assert bool(re.search(r"^  " + re.escape(flag_of(option)) + r"(?![\w-])", helped, re.M)) == (
                command in option.metadata["cli"]["commands"]
            ), (
                command,
                option.name,
            )


def test_eval_options_hold_the_task_s_eval_flags() -> None:
    args = parse("eval", "--task", "ranking", "--model", "m", "--data", "d.csv", "--run", "r.run")
    options = options_from_args(TASKS["ranking"].eval_options, args)
    assert (options.model, options.data, options.run, options.run_tag) == ("m", "d.csv", "r.run", "attnguide")
    assert {f.name for f in dataclasses.fields(options)} >= {"queries", "docs", "keep_unanswerable"}
    assert "encoder" not in {f.name for f in dataclasses.fields(options)}  # a training option only


def test_a_label_range_is_a_tuple() -> None:
    args = parse(
        "train", "--task", "regression", "--train", "t.csv", "--output-dir", "o", "--label-range", "1", "5"
    )
    assert train_options(chosen_task(args), args).label_range == (1.0, 5.0)
