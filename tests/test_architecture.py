"""The shape of the package: the import contracts of pyproject.toml hold, and the command line answers
``--help`` and bad arguments without importing anything heavy."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "matplotlib", "scipy", "sklearn", "ir_measures", "numpy")


def test_import_contracts_hold() -> None:
    """Layers, the method core's independence from transformers and data sets, and no cycles
    (``[tool.importlinter]`` in pyproject.toml)."""
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    # import-linter configures logging with dictConfig, which disables every logger that exists,
    # attnguide's too, for the rest of the test session: put them back as they were
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    disabled = [logger.disabled for logger in loggers]
    try:
        assert lint_imports(no_cache=True) == 0
    finally:
        os.chdir(cwd)
        for logger, was in zip(loggers, disabled, strict=True):
            logger.disabled = was


PROBE = """
import sys
from attnguide.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print(code, ",".join(heavy))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        *(([command, "--help"], 0) for command in ("train", "eval", "demo", "analyze", "compare", "tune")),
        (["train", "--epochs"], 2),  # a usage error
        (["train", "--guide", "mdg+xyz", "--train", "t.jsonl", "--output-dir", "o"], 2),  # a bad value
        (["train", "--lr", "0", "--train", "t.jsonl", "--output-dir", "o"], 2),
        (["compare", "--train", "t.jsonl", "--dev", "d.jsonl", "--output-dir", "o", "--seeds", "x"], 2),
    ],
)
def test_commands_answer_without_importing_anything_heavy(argv: list[str], code: int, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.splitlines()[-1] == f"{code} ", (result.stdout[-500:], result.stderr[-500:])
