#!/usr/bin/env bash
# An earlier commit against the working tree: a refactoring must not change what a run computes,
# what the command line offers, nor make a step slower or use more memory.
# 1. Trains the same runs with both and says whether each metrics.json is the same: every task,
#    guided (MDG+PDG), on the packaged MiniLM, 1 epoch, on small slices of the shared data sets:
#    classification (400 pairs of SICK train; dev: 200 of SICK trial), listwise ranking (3 questions
#    of TREC QA train; dev: 3 of dev), bi-encoder ranking (the same), regression and embedding (SICK
#    relatedness, the same pairs), token classification (the first 150 sentences of NCBI disease
#    train; dev: 100 of devel). Then `eval` and `analyze` of the classification run with both
#    versions (metrics and predictions), and every command's --help text.
# 2. Unless QUICK_OVERHEAD=0: benchmarks/overhead.py --quick of each version (its own copy of the
#    script), ROUNDS times (default 2) in turn, old then new, and a table of their step-time and
#    memory ratios to plain fine-tuning and their step times.
# SAME_METRICS=0 skips part 1. Exits 1 if anything of part 1 differs.
# Usage: bash benchmarks/compare_versions.sh REV [OUT_DIR]
# (from the repository root, in the README's environment; about 10 minutes per version for part 1
# and 3 minutes per overhead run on 2 quiet CPU cores)
set -euo pipefail
rev=${1:?an earlier commit to compare with}
out=${2:-runs/same-metrics}
data=${DATA_DIR:-../shared/data}
rm -rf "$out" && mkdir -p "$out/data"
head -n 401 "$data/sick/SICK_train.txt" > "$out/data/sick_train.txt"
head -n 201 "$data/sick/SICK_trial.txt" > "$out/data/sick_dev.txt"
head -n 121 "$data/trecqa/train.csv" > "$out/data/trecqa_train.csv"
head -n 81 "$data/trecqa/dev.csv" > "$out/data/trecqa_dev.csv"
sentences() {  # FILE N: the first N blank-line separated sentences
  awk -v n="$2" 'BEGIN { RS = ""; ORS = "\n\n" } NR <= n' "$1"
}
sentences "$data/ncbi-disease/train.tsv" 150 > "$out/data/ncbi_train.tsv"
sentences "$data/ncbi-disease/devel.tsv" 100 > "$out/data/ncbi_dev.tsv"
git worktree add --detach "$out/old-tree" "$rev" >/dev/null 2>&1
trap 'git worktree remove --force "$out/old-tree"' EXIT
train() {  # VERSION_SRC NAME ARGS...
  local src=$1 name=$2
  shift 2
  PYTHONPATH="$src" python -m attnguide -q train --guide mdg+pdg --epochs 1 --seed 3 --batch-size 16 \
    --output-dir "$out/$name" "$@" >/dev/null
}
sick=(--train "$out/data/sick_train.txt" --dev "$out/data/sick_dev.txt" --format sick)
trecqa=(--train "$out/data/trecqa_train.csv" --dev "$out/data/trecqa_dev.csv")
runs=(classification ranking ranking-bi regression embedding token-classification)
commands=(train eval analyze compare tune demo study forest)
for version in $([ "${SAME_METRICS:-1}" != 0 ] && echo old new); do
  src=$([ "$version" = old ] && echo "$out/old-tree/src" || echo "$PWD/src")
  train "$src" "$version-classification" "${sick[@]}"
  train "$src" "$version-ranking" --task ranking --ranking-loss listwise --negatives 3 --max-length 96 "${trecqa[@]}"
  train "$src" "$version-ranking-bi" --task ranking --encoder bi --max-length 96 "${trecqa[@]}"
  train "$src" "$version-regression" --task regression "${sick[@]}"
  train "$src" "$version-embedding" --task embedding "${sick[@]}"
  train "$src" "$version-token-classification" --task token-classification \
    --train "$out/data/ncbi_train.tsv" --dev "$out/data/ncbi_dev.tsv"
  PYTHONPATH="$src" python -m attnguide -q eval --model "$out/old-classification" \
    --data "$out/data/sick_dev.txt" --output "$out/$version-eval/predictions.jsonl" >/dev/null
  PYTHONPATH="$src" python -m attnguide -q analyze --model "$out/old-classification" --limit 20 \
    --data "$out/data/sick_dev.txt" --output-dir "$out/$version-analyze" >/dev/null
  for command in "${commands[@]}"; do
    COLUMNS=100 PYTHONPATH="$src" python -m attnguide "$command" --help > "$out/$version-help-$command.txt"
  done
done
status=0
same() {  # WHAT OLD NEW: JSON files compared as data, other files byte for byte
  if python - "$2" "$3" <<'PY'
import json, sys
old, new = sys.argv[1:]
if old.endswith(".json"):
    old, new = (json.load(open(path)) for path in (old, new))
    sys.exit(0 if old == new and json.dumps(old) == json.dumps(new) else 1)
sys.exit(0 if open(old, "rb").read() == open(new, "rb").read() else 1)
PY
  then echo "$1: the same ($(wc -c < "$3") bytes, $rev and the working tree)"
  else echo "$1: DIFFERS between $rev and the working tree"; status=1
  fi
}
if [ "${SAME_METRICS:-1}" != 0 ]; then
  for run in "${runs[@]}"; do same "$run metrics.json" "$out/old-$run/metrics.json" "$out/new-$run/metrics.json"; done
  same "eval metrics" "$out/old-eval/predictions.metrics.json" "$out/new-eval/predictions.metrics.json"
  same "eval predictions" "$out/old-eval/predictions.jsonl" "$out/new-eval/predictions.jsonl"
  for file in "$out"/old-analyze/*.json; do
    same "analyze $(basename "$file")" "$file" "$out/new-analyze/$(basename "$file")"
  done
  for command in "${commands[@]}"; do
    same "$command --help" "$out/old-help-$command.txt" "$out/new-help-$command.txt"
  done
fi
if [ "${QUICK_OVERHEAD:-1}" != 0 ]; then
  for round in $(seq 1 "${ROUNDS:-2}"); do
    for version in old new; do
      tree=$([ "$version" = old ] && echo "$out/old-tree" || echo "$PWD")
      PYTHONPATH="$tree/src" python "$tree/benchmarks/overhead.py" --quick \
        --output "$out/overhead-$version-$round.json" >/dev/null 2>&1
    done
  done
  python - "$out" "$rev" <<'PY'
"""Per route and shape: each version's median over rounds of its step-time ratio, step time and
peak-memory ratio (all against plain-sdpa in the same run)."""
import glob, json, statistics, sys
out, rev = sys.argv[1:]
rows = {}
for version in ("old", "new"):
    for path in sorted(glob.glob(f"{out}/overhead-{version}-*.json")):
        for r in json.load(open(path))["results"]:
            key = (r["route"], r["length"], r["batch"])
            rows.setdefault(key, {}).setdefault(version, []).append(r)
print(f"| route | n × batch | time ratio {rev} | time ratio now | step ms {rev} | step ms now | memory ratio {rev} | memory ratio now |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (route, n, b), by in rows.items():
    cell = lambda v, f: statistics.median(f(r) for r in by[v])
    print(f"| {route} | {n} × {b} | {cell('old', lambda r: r['time_ratio']):.2f} | {cell('new', lambda r: r['time_ratio']):.2f} | "
          f"{cell('old', lambda r: r['median_s']) * 1000:.0f} | {cell('new', lambda r: r['median_s']) * 1000:.0f} | "
          f"{cell('old', lambda r: r['memory_ratio']):.2f} | {cell('new', lambda r: r['memory_ratio']):.2f} |")
PY
fi
exit $status
