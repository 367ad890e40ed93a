"""The study's selection splits: a fixed share of each training file, set apart for choosing (the
tuned arm's search, the paper recipe's best checkpoint), so that the official dev split, on which
every arm is reported, is never chosen on (docs/STUDY.md).

Records are kept whole and in their file's own format, so that attnguide reads the parts exactly as
it reads the original: SICK and MSRP by line (header, byte-order mark and line ends kept), TREC QA
by question (all its candidate sentences together), NCBI disease by sentence (blank-line blocks).
Which records go to the selection split is a seeded random choice; `splits.json` records the seed,
the share, the counts and the SHA-256 of every file. Running it again rewrites identical files.

    python benchmarks/study/carve_selection.py --output-dir runs/study/splits
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
from pathlib import Path

from attnguide.files import write_json, write_text
from attnguide.rundir import file_sha256

DATA = Path("../shared/data")
SOURCES = {  # name: (training file, how its records are found)
    "sick": (DATA / "sick/SICK_train.txt", "lines"),
    "msrp": (DATA / "msrp/msr-para-train.tsv", "lines"),
    "trecqa": (DATA / "trecqa/train.csv", "questions"),
    "ncbi-disease": (DATA / "ncbi-disease/train.tsv", "sentences"),
}


def records(text: str, kind: str) -> tuple[str, list[str]]:
    """The file's header (kept at the top of both parts) and its records, each as its own text."""
    if kind == "lines":
        lines = text.splitlines(keepends=True)
        return lines[0], lines[1:]
    if kind == "sentences":
        blocks = [b for b in re.split(r"\n[ \t]*\n", text.strip("\n")) if b.strip()]
        return "", [b + "\n\n" for b in blocks]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, groups = rows[0], {}
    for row in rows[1:]:
        groups.setdefault(row[0], []).append(row)
    out = []
    for group in groups.values():
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(group)
        out.append(buffer.getvalue())
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(header)
    return head.getvalue(), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/study/splits")
    parser.add_argument("--share", type=float, default=0.1, help="share of records set apart (0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.output_dir)
    record = {"share": args.share, "seed": args.seed, "splits": {}}
    for name, (source, kind) in SOURCES.items():
        with open(source, encoding="utf-8", newline="") as handle:  # line ends as they are
            text = handle.read()
        header, items = records(text, kind)
        chosen = set(
            random.Random(f"{args.seed}:{name}").sample(range(len(items)), round(len(items) * args.share))
        )
        parts = {
            "train": header + "".join(r for i, r in enumerate(items) if i not in chosen),
            "selection": header + "".join(r for i, r in enumerate(items) if i in chosen),
        }
        suffix = source.suffix
        entry = {"source": str(source), "source_sha256": file_sha256(source), "records": kind}
        for part, content in parts.items():
            path = out / name / f"{part}{suffix}"
            write_text(path, content)
            count = len(chosen) if part == "selection" else len(items) - len(chosen)
            entry[part] = {"file": str(path), "records": count, "sha256": file_sha256(path)}
        record["splits"][name] = entry
        kept, apart = entry["train"]["records"], entry["selection"]["records"]
        print(f"{name}: {kept} {kind} to train on, {apart} set apart")
    write_json(out / "splits.json", record)


if __name__ == "__main__":
    main()
