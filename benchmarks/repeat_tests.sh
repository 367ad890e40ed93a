#!/usr/bin/env bash
# Runs the test suite (or the pytest arguments given) N times in a row and stops at the first
# failure, to show that no test depends on timing. With LOAD=1, a MiniLM training run on SICK keeps
# both cores busy in the background for the whole time. Each run's summary line goes to stdout and
# its full output to $LOG_DIR/run-K.log.
# Usage: [LOAD=1] bash benchmarks/repeat_tests.sh N [PYTEST ARGS...]   (run from the repository root,
# in the environment the README sets up)
set -euo pipefail
runs=${1:?how many runs}
shift
log_dir=${LOG_DIR:-runs/repeat-tests}
mkdir -p "$log_dir"
if [ "${LOAD:-0}" = 1 ]; then
  data=${DATA_DIR:-../shared/data}/sick
  # its own session, so that the whole loop and its training process stop together at the end
  setsid bash -c 'while true; do
    attnguide -q train --train "$1/SICK_train.txt" --dev "$1/SICK_trial.txt" --guide mdg+pdg \
      --epochs 1 --output-dir "$2/load-run" --overwrite >/dev/null 2>&1 || true
  done' load "$data" "$log_dir" &
  load=$!
  trap 'kill -- -$load 2>/dev/null; wait $load 2>/dev/null || true' EXIT
  echo "load: training run loop in the background (pid $load)"
fi
for k in $(seq 1 "$runs"); do
  start=$(date +%s)
  if python -m pytest -q -p no:cacheprovider "$@" >"$log_dir/run-$k.log" 2>&1; then
    echo "run $k/$runs: $(tail -n 1 "$log_dir/run-$k.log") ($(($(date +%s) - start)) s)"
  else
    echo "run $k/$runs FAILED: $(tail -n 1 "$log_dir/run-$k.log") (see $log_dir/run-$k.log)"
    exit 1
  fi
done
