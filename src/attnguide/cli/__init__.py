"""The ``attnguide`` command line: one module per subcommand, the flags made from the options
dataclasses in ``flags``, what the subcommands share in ``common``.

Building the parser and checking arguments import nothing heavy, so that ``--help`` and a usage error
answer at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import NoReturn

from ..errors import AttnguideError
from . import analyze, compare, demo, evaluate, study, train, tune

logger = logging.getLogger("attnguide")

COMMANDS = (train, evaluate, demo, analyze, compare, tune, study)


class UsageError(AttnguideError):
    """A command line the parser refuses; reported in one line with exit code 2."""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr with exit code 2, like every other attnguide error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(allow_abbrev: bool = True) -> argparse.ArgumentParser:
    """The argument parser of every subcommand; ``allow_abbrev=False`` refuses abbreviated flags,
    for command lines that a program checks flag by flag (a study's tune options)."""
    parser = _OneLineParser(
        prog="attnguide", description="Fine-tune encoders with attention guiding.", allow_abbrev=allow_abbrev
    )
    _add_global_options(parser, default=False)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=functools.partial(_OneLineParser, allow_abbrev=allow_abbrev),
    )
    for command in COMMANDS:
        command.add_parser(sub)
    for command in sub.choices.values():  # also after the subcommand; there, unset unless given
        _add_global_options(command, default=argparse.SUPPRESS)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks")
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(format="attnguide: %(message)s", level=logging.WARNING)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``attnguide`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version
        return int(stop.code or 0)
    except UsageError as error:
        print(f"attnguide: error: {printable(str(error))}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging(args.quiet)
    try:
        code = args.func(args)
        _leave_process_group()
        return code
    except AttnguideError as error:
        if args.debug:
            raise
        print(f"attnguide: error: {printable(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnguide: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _leave_process_group() -> None:
    """Under torchrun or accelerate launch, end the process group once the command has finished:
    left to the interpreter's exit, gloo's threads can abort a finished process (SIGABRT). Not after
    an error, where the other processes may still wait in a collective call."""
    distributed = sys.modules.get("torch.distributed")  # never imported: no process group to end
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def printable(message: str) -> str:
    """``message`` with control characters (a NUL or a newline from a file name, say) escaped, so
    that an error stays one readable line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
