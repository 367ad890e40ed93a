"""Print a Markdown table of the metrics.json of several run directories, one row per run.

python benchmarks/metrics_table.py RUN_DIR... [--columns map mrr ndcg@10 zero_shot_map]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ["accuracy", "macro_f1", "mdg_loss", "pdg_loss", "head_similarity", "special_token_share"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--columns", nargs="+", default=COLUMNS, help="metrics.json keys")
    args = parser.parse_args()
    print("| run | guide | " + " | ".join(args.columns) + " | seconds |")
    print("|---" * (len(args.columns) + 3) + "|")
    for run_dir in args.run_dirs:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        run = json.loads((Path(run_dir) / "run.json").read_text())
        cells = [f"{metrics[c]:.4f}" if c in metrics else "–" for c in args.columns]
        print(
            f"| {run_dir} | {run['options']['guide']['guides']} | "
            + " | ".join(cells)
            + f" | {run['seconds']} |"
        )


if __name__ == "__main__":
    main()
