#!/usr/bin/env bash
# The packaged MiniLM fine-tuned on SICK train for 3 epochs, without and with MDG+PDG (default
# weights), evaluated on SICK trial; prints a Markdown table of the two runs' metrics.json.
# Usage: bash benchmarks/sick_guided_vs_unguided.sh [OUT_DIR] [SEED]   (about 10 minutes on 2 CPU cores)
# The runs recorded in docs/RESULTS.md were made before the efficient capture existed, on the
# output-attentions route (post-dropout maps); CAPTURE=auto runs the current default route instead.
set -euo pipefail
out=${1:-runs/sick}
seed=${2:-42}
data=${DATA_DIR:-../shared/data}/sick
for guide in none mdg+pdg; do
  attnguide train --train "$data/SICK_train.txt" --dev "$data/SICK_trial.txt" --guide "$guide" \
    --epochs 3 --seed "$seed" --capture "${CAPTURE:-output-attentions}" --output-dir "$out/${guide/+/-}" --overwrite
done
python benchmarks/metrics_table.py "$out/none" "$out/mdg-pdg"
