#!/usr/bin/env bash
# The zoo's training queue: the runs still to publish, as resumable jobs.
#
#   bash tools/queue.sh a &        # lane a: half of the seed-1/2 ResNet20 runs (TensorFlow)
#   bash tools/queue.sh b &        # lane b: the other half
#   bash tools/queue.sh status     # how far every run got
#   bash tools/queue.sh args ID    # one job's train arguments
#   bash tools/queue.sh publish    # every finished run into zoo/: export, evaluate, regenerate the docs' tables
#
# Each lane runs its jobs one after another on one core (taskset + one intra-op
# thread), so two lanes share a 2-core machine. A job already published in zoo/
# or whose run folder holds model.weights.h5 is finished and skipped; one with config.json is continued
# with --resume (at most the current epoch is lost); any other starts fresh.
# Run folders live in $KERAS_ER_RUNS (default: runs/ beside the checkout, outside
# the work tree); each job logs to <run>.log there. `publish` (run it in the checkout
# that commits the zoo) exports each finished, unpublished run on its backend
# (`keras-er export`), records its top-1 on every backend that has not measured it
# (`keras-er --backend B evaluate --zoo ID --record`; run it again after a failure) and
# rewrites the docs' generated tables and figure (tools/zoo_pages.py); then commit zoo/
# and the pages.
# Jobs run this checkout's code (PYTHONPATH), whatever `pip install -e` last pointed at.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${KERAS_ER_RUNS:-$(cd .. && pwd)/runs}"
export KERAS_ER_DATA="${KERAS_ER_DATA:-$(cd .. && pwd)/shared/data}"

# lane  run-id  backend  train arguments (each job names its --seed)
JOBS=(
  "a resnet20_dense_cifar10_s1 tensorflow --model resnet20 --scheme dense --seed 1"
  "b resnet20_erk_d0.1_cifar10_s1 tensorflow --model resnet20 --scheme erk --density 0.1 --seed 1"
  "a resnet20_balanced_d0.1_cifar10_s1 tensorflow --model resnet20 --scheme balanced --density 0.1 --seed 1"
  "b resnet20_uniform_d0.1_cifar10_s1 tensorflow --model resnet20 --scheme uniform --density 0.1 --seed 1"
  "a resnet20_erk_d0.02_cifar10_s1 tensorflow --model resnet20 --scheme erk --density 0.02 --seed 1"
  "b resnet20_balanced_d0.02_cifar10_s1 tensorflow --model resnet20 --scheme balanced --density 0.02 --seed 1"
  "a resnet20_uniform_d0.02_cifar10_s1 tensorflow --model resnet20 --scheme uniform --density 0.02 --seed 1"
  "b resnet20_dense_cifar10_s2 tensorflow --model resnet20 --scheme dense --seed 2"
  "a resnet20_erk_d0.1_cifar10_s2 tensorflow --model resnet20 --scheme erk --density 0.1 --seed 2"
  "b resnet20_balanced_d0.1_cifar10_s2 tensorflow --model resnet20 --scheme balanced --density 0.1 --seed 2"
  "a resnet20_uniform_d0.1_cifar10_s2 tensorflow --model resnet20 --scheme uniform --density 0.1 --seed 2"
  "b resnet20_erk_d0.02_cifar10_s2 tensorflow --model resnet20 --scheme erk --density 0.02 --seed 2"
  "a resnet20_balanced_d0.02_cifar10_s2 tensorflow --model resnet20 --scheme balanced --density 0.02 --seed 2"
  "b resnet20_uniform_d0.02_cifar10_s2 tensorflow --model resnet20 --scheme uniform --density 0.02 --seed 2"
  "a resnet20_erk_d0.1_rigl_cifar10_s1 tensorflow --model resnet20 --scheme erk --density 0.1 --dst rigl --seed 1"
  "b resnet20_erk_d0.1_snip-global_cifar10_s1 tensorflow --model resnet20 --scheme erk --density 0.1 --prune snip --seed 1"
  "a resnet20_erk_d0.1_synflow-global_cifar10_s1 tensorflow --model resnet20 --scheme erk --density 0.1 --prune synflow --seed 1"
  "b resnet20_erk_d0.1_rigl_cifar10_s2 tensorflow --model resnet20 --scheme erk --density 0.1 --dst rigl --seed 2"
  "a resnet20_erk_d0.1_snip-global_cifar10_s2 tensorflow --model resnet20 --scheme erk --density 0.1 --prune snip --seed 2"
  "b resnet20_erk_d0.1_synflow-global_cifar10_s2 tensorflow --model resnet20 --scheme erk --density 0.1 --prune synflow --seed 2"
)

progress() {  # epochs finished, from the run's log
  local log="$RUNS/$1/log.csv"
  local lines=0
  [[ -f "$log" ]] && lines=$(wc -l <"$log")
  echo $((lines > 1 ? lines - 1 : 0))
}

if [[ "${1:-}" == args ]]; then  # the train arguments of one job, for other runners (tools/gpu_queue.sh)
  for job in "${JOBS[@]}"; do
    read -r _ id _ args <<<"$job"
    [[ "$id" == "${2:-}" ]] && echo "$args" && exit 0
  done
  echo "queue.sh: no job ${2:-} (the ids are in JOBS)" >&2
  exit 2
fi

if [[ "${1:-}" == status ]]; then
  for job in "${JOBS[@]}"; do
    read -r lane id backend _ <<<"$job"
    state=queued
    [[ -f "$RUNS/$id/config.json" ]] && state="running or stopped"
    [[ -f "$RUNS/$id/model.weights.h5" ]] && state=finished
    [[ -f "zoo/$id/metadata.json" ]] && state=published
    echo "lane $lane  $id ($backend): $(progress "$id")/30 epochs, $state"
  done
  exit 0
fi

if [[ "${1:-}" == publish ]]; then
  # This checkout's code and zoo/, whatever `pip install -e` or $KERAS_ER_ZOO_DIR point at.
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_ER_ZOO_DIR="$PWD/zoo"
  measured() {  # whether backend $2 recorded entry $1's top-1
    python -c 'import json, sys; sys.exit(sys.argv[2] not in (json.load(open(sys.argv[1])).get("top1") or {}))' \
      "zoo/$1/metadata.json" "$2"
  }
  for job in "${JOBS[@]}"; do
    read -r _ id backend _ <<<"$job"
    [[ -f "$RUNS/$id/model.weights.h5" || -f "zoo/$id/metadata.json" ]] || continue
    if [[ ! -f "zoo/$id/metadata.json" ]]; then
      echo "$(date -Is) publish: export $id on $backend"
      python -m keras_er --backend "$backend" export "$RUNS/$id"
    fi
    for other in tensorflow torch jax; do  # an entry whose evaluation failed before gets it now
      measured "$id" "$other" && continue
      echo "$(date -Is) publish: evaluate $id on $other"
      python -m keras_er --backend "$other" evaluate --zoo "$id" --record
    done
  done
  python tools/zoo_pages.py
  echo "$(date -Is) publish: done; commit zoo/, README.md and docs/"
  exit 0
fi

lane="${1:?usage: bash tools/queue.sh a|b|status|args ID|publish}"
core=$([[ "$lane" == a ]] && echo 0 || echo 1)
mkdir -p "$RUNS"
for job in "${JOBS[@]}"; do
  read -r job_lane id backend args <<<"$job"
  [[ "$job_lane" == "$lane" ]] || continue
  [[ -f "$RUNS/$id/model.weights.h5" || -f "zoo/$id/metadata.json" ]] && continue
  resume=()
  [[ -f "$RUNS/$id/config.json" ]] && resume=(--resume)
  echo "$(date -Is) lane $lane: $id (${resume[*]:-fresh}, $(progress "$id") epochs done)"
  # shellcheck disable=SC2086  # $args is a list of words
  OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" taskset -c "$core" python -m keras_er --backend "$backend" train $args --epochs 30 \
    --out "$RUNS/$id" "${resume[@]}" >>"$RUNS/$id.log" 2>&1 || status=$?
  if (( ${status:-0} )); then  # captured first: $(date) would reset $?
    echo "$(date -Is) lane $lane: $id stopped with exit $status (see $RUNS/$id.log)"
  fi
  status=0
done
echo "$(date -Is) lane $lane: done"
