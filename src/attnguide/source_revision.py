"""Which attnguide source made a run: the last git commit that changed the package, for run.json.

The version number stays 0.1.0 between releases, so two runs that both say 0.1.0 may come from code
whose numerics differ. Where attnguide runs from a git checkout (an editable install), the short
hash of the last commit that touched ``src/attnguide`` names the code exactly, with ``+modified``
when the package has uncommitted changes; a commit that changes only docs or data leaves it as is.
An installed wheel has no checkout: its version number is all there is, and this returns ``None``.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    """The output of a git command in the package directory, or ``None`` if it cannot tell."""
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def source_revision() -> str | None:
    """``<short hash>`` or ``<short hash>+modified`` for a git checkout, else ``None``."""
    commit = _git("log", "-1", "--format=%h", "--", ".")
    if not commit:  # not a checkout, git missing, or a package git does not track
        return None
    changes = _git("status", "--porcelain", "--", ".")  # new files count; ignored ones do not
    return f"{commit}+modified" if changes else commit
