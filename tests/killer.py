"""Run the attnguide command line in a process that SIGKILLs itself at a chosen point of a run.

Used as a script, ``python tests/killer.py ATTNGUIDE-ARGS``, so that a kill lands at the same step
on every run instead of racing a timer. Where the environment says so:

- ``KILL_STEP=N``: after optimiser step N; ``KILL_IN_CHECKPOINT=N``: in the middle of writing
  checkpoint N (after its weights and optimizer, before its RNG state and trainer_state.json).
- ``KILL_ONLY_IN=NAME``: only in the run whose ``--output-dir`` ends with NAME, or whose partial
  directory is ``.NAME.partial`` (a trial that ``tune`` runs in its own process).
- ``KILL_GROUP=1``: kill the whole process group, like a lost machine: a ``compare`` run through
  this script runs its cells through it too, so the grid dies with the training run it started.
"""

from __future__ import annotations

import os
import signal
import sys

import transformers

import attnguide.experiments.runner as runner
import attnguide.training.pipeline as training
from attnguide.cli import main


def _this_run(output_dir: str) -> bool:
    """Whether this is the run to kill: its ``--output-dir`` ends with ``KILL_ONLY_IN``, or, for a run
    inside this process (a trial of ``tune``), the Trainer's output directory names it."""
    wanted = os.environ.get("KILL_ONLY_IN")
    if wanted is None:
        return True
    args = sys.argv[1:]
    named = "--output-dir" in args and args[args.index("--output-dir") + 1].endswith(wanted)
    return named or f"{wanted}." in os.path.basename(output_dir)


def _at(variable: str, step: int, output_dir: str) -> bool:
    return step == int(os.environ.get(variable, -1)) and _this_run(output_dir)


def _die() -> None:
    if os.environ.get("KILL_GROUP"):
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class _KillAtStep(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if _at("KILL_STEP", state.global_step, args.output_dir):
            _die()


_route = training.route_logs_to_stderr
training.route_logs_to_stderr = lambda trainer: (_route(trainer), trainer.add_callback(_KillAtStep()))
_save_rng = transformers.Trainer._save_rng_state


def _save_rng_or_die(self, output_dir):
    if _at("KILL_IN_CHECKPOINT", self.state.global_step, self.args.output_dir):
        _die()
    _save_rng(self, output_dir)


transformers.Trainer._save_rng_state = _save_rng_or_die
runner.ATTNGUIDE = (sys.executable, os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
