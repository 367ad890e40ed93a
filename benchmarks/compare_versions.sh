#!/usr/bin/env bash
# An earlier commit against the working tree: a refactoring must not change what a run computes,
# nor make a step slower or use more memory.
# 1. Trains the same runs with both and says whether each metrics.json is the same. Two runs per
#    version, both guided (MDG+PDG), on the packaged MiniLM, 1 epoch: classification on the first 400
#    pairs of SICK train (dev: the first 200 of SICK trial), and listwise ranking on the first 3
#    questions of TREC QA train (dev: the first 3 of dev).
# 2. Unless QUICK_OVERHEAD=0: benchmarks/overhead.py --quick of each version (its own copy of the
#    script), ROUNDS times (default 2) in turn, old then new, and a table of their step-time and
#    memory ratios to plain fine-tuning and their step times.
# SAME_METRICS=0 skips part 1. Exits 1 if a metrics.json differs. Usage: bash benchmarks/compare_versions.sh REV [OUT_DIR]
# (from the repository root, in the README's environment; about 5 minutes per version for part 1 and
# 3 minutes per overhead run on 2 quiet CPU cores)
set -euo pipefail
rev=${1:?an earlier commit to compare with}
out=${2:-runs/same-metrics}
data=${DATA_DIR:-../shared/data}
rm -rf "$out" && mkdir -p "$out/data"
head -n 401 "$data/sick/SICK_train.txt" > "$out/data/sick_train.txt"
head -n 201 "$data/sick/SICK_trial.txt" > "$out/data/sick_dev.txt"
head -n 121 "$data/trecqa/train.csv" > "$out/data/trecqa_train.csv"
head -n 81 "$data/trecqa/dev.csv" > "$out/data/trecqa_dev.csv"
git worktree add --detach "$out/old-tree" "$rev" >/dev/null 2>&1
trap 'git worktree remove --force "$out/old-tree"' EXIT
train() {  # VERSION_SRC NAME ARGS...
  local src=$1 name=$2
  shift 2
  PYTHONPATH="$src" python -m attnguide -q train --guide mdg+pdg --epochs 1 --seed 3 --batch-size 16 \
    --output-dir "$out/$name" "$@" >/dev/null
}
for version in $([ "${SAME_METRICS:-1}" != 0 ] && echo old new); do
  src=$([ "$version" = old ] && echo "$out/old-tree/src" || echo "$PWD/src")
  train "$src" "$version-classification" --train "$out/data/sick_train.txt" --dev "$out/data/sick_dev.txt"
  train "$src" "$version-ranking" --task ranking --ranking-loss listwise --negatives 3 --max-length 96 \
    --train "$out/data/trecqa_train.csv" --dev "$out/data/trecqa_dev.csv"
done
status=0
for run in $([ "${SAME_METRICS:-1}" != 0 ] && echo classification ranking); do
  if python - "$out/old-$run/metrics.json" "$out/new-$run/metrics.json" <<'PY'
import json, sys
old, new = (json.load(open(path)) for path in sys.argv[1:])
sys.exit(0 if old == new and list(old) == list(new) else 1)
PY
  then echo "$run: metrics.json the same ($(wc -c < "$out/new-$run/metrics.json") bytes, $rev and the working tree)"
  else echo "$run: metrics.json DIFFERS between $rev and the working tree"; status=1
  fi
done
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
