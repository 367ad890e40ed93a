#!/usr/bin/env bash
# The packaged MiniLM fine-tuned as a cross-encoder reranker on TREC QA train, without and with
# MDG+PDG (default weights), evaluated on TREC QA dev; prints a Markdown table of both runs' metrics.
# Loss: listwise softmax cross-entropy over 1 correct + 3 sampled wrong answer sentences of a question,
# 4 such groups (16 pairs) per batch, 1 epoch: 338 groups, 85 steps, every correct sentence seen once.
# Usage: bash benchmarks/trecqa_guided_vs_unguided.sh [OUT_DIR] [SEED]   (about 8 minutes per run on
# a loaded 2-core CPU)
set -euo pipefail
out=${1:-runs/trecqa}
seed=${2:-42}
data=${DATA_DIR:-../shared/data}/trecqa
for guide in none mdg+pdg; do
  attnguide train --task ranking --train "$data/train.csv" --dev "$data/dev.csv" --guide "$guide" \
    --ranking-loss listwise --negatives 3 --batch-size 16 --epochs 1 --seed "$seed" \
    --output-dir "$out/${guide/+/-}" --overwrite
done
python - "$data/dev.csv" "$out/none" "$out/mdg-pdg" <<'PY'
"""Both runs' dev metrics; then MAP/MRR again on the questions with both a correct and a wrong
sentence only (the "clean" protocol of the answer-selection literature), re-read from dev.run."""
import json
import sys
from pathlib import Path

import ir_measures

from attnguide.tasks.ranking import ranking_metrics, read_ranking

dev, runs = read_ranking(sys.argv[1]), sys.argv[2:]
clean = {q: docs for q, docs in dev.qrels.items() if 0 < sum(r > 0 for r in docs.values()) < len(docs)}
columns = ["map", "mrr", "ndcg@10", "p@1", "recall@1", "recall@3", "recall@5", "mdg_loss", "pdg_loss",
           "head_similarity"]
print("| run | guide | " + " | ".join(columns) + " | queries | clean map | clean mrr | clean queries | seconds |")
print("|---" * (len(columns) + 7) + "|")
for run_dir in runs:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    run = json.loads((Path(run_dir) / "run.json").read_text())
    ranking: dict[str, dict[str, float]] = {}
    for row in ir_measures.read_trec_run(str(Path(run_dir) / "dev.run")):
        if row.query_id in clean:
            ranking.setdefault(row.query_id, {})[row.doc_id] = row.score
    on_clean = ranking_metrics(clean, ranking)
    cells = " | ".join(f"{metrics[c]:.4f}" for c in columns)
    print(f"| {run_dir} | {run['options']['guide']['guides']} | {cells} | {metrics['queries_evaluated']} "
          f"| {on_clean['map']:.4f} | {on_clean['mrr']:.4f} | {on_clean['queries_evaluated']} | {run['seconds']} |")
PY
