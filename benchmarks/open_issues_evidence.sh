#!/usr/bin/env bash
# The measurements of issues 17, 18 and 19 for docs/RESULTS.md, as two queues that run side by side
# (one thread each: on a 2-core machine two one-thread runs finish more work than one two-thread
# run). Every step is resumable: `compare` reruns nothing finished and resumes an interrupted cell
# from its last checkpoint; `tune` continues its study. Run the script again after a stop and it
# picks up where it was. Each step's output goes to $LOG_DIR/<step>.log; a step's start and end go
# to $LOG_DIR/steps.log with the time, so its duration can be read off.
# Usage: bash benchmarks/open_issues_evidence.sh [a|b|both]   (from the repository root, in the
# environment the README sets up, with ../shared/data beside it)
set -uo pipefail
which=${1:-both}
log_dir=${LOG_DIR:-runs/evidence-logs}
mkdir -p "$log_dir"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

step() {  # step NAME COMMAND...: run one step, log its start, end and exit status
  local name=$1
  shift
  echo "$(date -u +%FT%TZ) start $name" >>"$log_dir/steps.log"
  "$@" >>"$log_dir/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) end $name rc=$?" >>"$log_dir/steps.log"
}

queue_a() {  # issue 18 (rankers, embeddings), issue 17's NCBI grid, issue 19, regression with BCE
  step trecqa-bi attnguide compare --config benchmarks/grids/trecqa-bi.yaml
  step trecqa-cross attnguide compare --config benchmarks/grids/trecqa-cross.yaml
  step sick-embedding attnguide compare --config benchmarks/grids/sick-embedding.yaml
  step sick-embedding-mnrl attnguide compare --config benchmarks/grids/sick-embedding-mnrl.yaml
  step ncbi attnguide compare --config benchmarks/grids/ncbi.yaml
  issue_19 a
  step sick-relatedness-bce attnguide compare --config benchmarks/grids/sick-relatedness-bce.yaml
}

queue_b() {  # issue 17 (regression, LoRA), issue 18's cross-encoder route, issue 19
  step sick-relatedness attnguide compare --config benchmarks/grids/sick-relatedness.yaml
  step sick-lora attnguide compare --config benchmarks/grids/sick-lora.yaml
  step cross-encoder-sick python benchmarks/cross_encoder_sick.py --output-dir runs/cross-encoder-sick
  issue_19 b
}

issue_19() {  # both queues work on the SICK study and then on the learning curve, as two workers
  # that share each (tune's workers wait for each other before the confirmation, so both start
  # the curve with the tuned setting)
  step "tune-sick-$1" attnguide tune --train ../shared/data/sick/SICK_train.txt \
    --dev ../shared/data/sick/SICK_trial.txt --format sick --trials 30 --seeds 5 \
    --output-dir runs/tune-sick
  step "learning-curve-$1" python benchmarks/learning_curve.py --output-dir runs/learning-curve \
    --tuned runs/tune-sick/results.json
  # the 500 pairs again with as many optimiser steps as the 2,000-pair runs (12 epochs, not 3)
  step "learning-curve-500-12ep-$1" python benchmarks/learning_curve.py --sizes 500 \
    --output-dir runs/learning-curve-500-12ep --tuned runs/tune-sick/results.json -- --epochs 12
}

case $which in
  a) queue_a ;;
  b) queue_b ;;
  both)
    queue_a &
    queue_b &
    wait
    ;;
  *) echo "usage: $0 [a|b|both]" >&2; exit 2 ;;
esac
