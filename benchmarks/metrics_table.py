"""Print a Markdown table of the metrics.json of several run directories, one row per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ["accuracy", "macro_f1", "mdg_loss", "pdg_loss", "head_similarity", "special_token_share"]


def main(run_dirs: list[str]) -> None:
    print("| run | guide | " + " | ".join(COLUMNS) + " | seconds |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for run_dir in run_dirs:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        run = json.loads((Path(run_dir) / "run.json").read_text())
        cells = [f"{metrics[c]:.4f}" for c in COLUMNS]
        print(
            f"| {run_dir} | {run['options']['guide']['guides']} | "
            + " | ".join(cells)
            + f" | {run['seconds']} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
