#!/usr/bin/env bash
# Train queued zoo runs on a lent GPU machine, with the device check and the GPU
# benchmark in the same lease (the device tool: 15 minutes, 64 MiB per call there,
# 8 files of 16 MiB back). GPU_QUEUE_CPU=1 runs the same code here on a tiny setting.
#
#   here, once:  python tools/gpu_transfer.py pack-data --data ../shared/data/cifar10.npz --out .gpu
#                bash tools/device_check.sh prepare && cp .device/expected.json .gpu/b/
#   call 1 (carry .gpu/a):                bash tools/gpu_queue.sh stage a
#   call 2, within 30 s (carry .gpu/b .whl): bash tools/gpu_queue.sh ID...
#   call 3.., within 30 s each, while call 2 says "more": python3 tools/gpu_transfer.py fetch ... (as it prints)
#   here, after: python tools/gpu_transfer.py unpack-runs <each call's files_at>/runs.tar.* --into ../runs
#
# Call 2 unpacks CIFAR-10 (sha256-checked), starts every run ID (its arguments from
# tools/queue.sh, 30 epochs, its seed) at once on the GPU with JAX (torch if JAX cannot
# reach the GPU), runs tools/device_check.sh beside them, stops runs still going
# GPU_QUEUE_SECONDS (default 520) minus 80 s after the start, then times the
# benchmark worker per backend in what is left, and packs finished runs, logs and
# results into runs.tar.NN pieces (tools/gpu_transfer.py pack-runs): the first four
# come back in $OUT, the rest wait on the machine for `fetch` calls.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAGE="${GPU_QUEUE_STAGE:-/tmp/gpu_stage}"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

if [[ "${1:-}" == stage ]]; then  # leave one carried part outside the work tree for the next call
  mkdir -p "$STAGE" && cp -r ".gpu/${2:?stage which part}/." "$STAGE/" && du -sh "$STAGE"
  exit
fi
(($#)) || { echo "usage: bash tools/gpu_queue.sh stage PART | ID..." >&2; exit 2; }

budget="${GPU_QUEUE_SECONDS:-520}"
work="${GPU_QUEUE_WORK:-/tmp/gpu_queue}"
results="$work/results"
for id in "$@"; do  # every id known before anything starts
  bash tools/queue.sh args "$id" >/dev/null || exit 2
done
rm -rf "$work"  # a warm machine keeps an earlier call's runs: never send those back as new
mkdir -p "$work/runs" "$results/logs"
elapsed() { echo $((SECONDS)); }

if [[ -n "${GPU_QUEUE_CPU:-}" ]]; then
  OUT="${OUT:-$work/out}"
  train_extra=(--epochs 1 --limit 256)
  check_env=(DEVICE_CHECK_CPU=1 DEVICE_CHECK_BACKENDS="torch jax" DEVICE_CHECK_SECONDS=200)
  bench_models=(resnet20) bench_repeats=1
else
  OUT="${OUT:?on the GPU machine \$OUT names the folder that comes back}"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH="/tmp/site"
  nvidia-smi >"$results/nvidia-smi.txt" 2>&1
  train_extra=(--epochs 30)
  check_env=(DEVICE_CHECK_SECONDS=100)
  bench_models=(resnet20 vgg16) bench_repeats=7
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" tools/gpu_transfer.py unpack-data "$STAGE" .gpu/b --out "$work/data/cifar10.npz" || exit
export KERAS_ER_DATA="$work/data"
mkdir -p "$work/check" && cp .gpu/b/expected.json "$work/check/" && ln -sf "$work/data/cifar10.npz" "$work/check/"

backend=jax
probe='import jax, keras; keras.ops.sum(keras.ops.ones(3)); print(jax.devices())'
if [[ -z "${GPU_QUEUE_CPU:-}" ]]; then probe+='; assert jax.devices()[0].platform == "gpu"'; fi
KERAS_BACKEND=jax "$PYTHON" -c "$probe" >"$results/logs/probe.log" 2>&1 || backend=torch
echo "$(elapsed) s: training on $backend: $*"

pids=()
for id in "$@"; do
  read -r -a args <<<"$(bash tools/queue.sh args "$id")" || exit
  "$PYTHON" -m keras_er --backend "$backend" train "${args[@]}" "${train_extra[@]}" \
    --out "$work/runs/$id" >"$results/logs/$id.log" 2>&1 &
  pids+=($!)
done
env "${check_env[@]}" DEVICE_CHECK_DATA="$work/check" OUT="$results/check" bash tools/device_check.sh >"$results/logs/device_check.log" 2>&1 &
check=$!

while (($(elapsed) < budget - 80)); do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
  ((running)) || break
  sleep 5
done
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null
echo "$(elapsed) s: training over"
for id in "$@"; do tail -n 2 "$work/runs/$id/log.csv" 2>/dev/null | sed "s/^/$id: /"; done
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
for id in "$@"; do  # the card says where it trained (zoo/publish.py reads config["hardware"])
  [[ -f "$work/runs/$id/config.json" ]] && "$PYTHON" - "$work/runs/$id/config.json" "${gpu:-CPU}" "$backend" "$#" <<'PY'
import json, sys
path, device, backend, runs = sys.argv[1:]
config = json.load(open(path))
config["hardware"] = f"one {device} ({backend}; {runs} runs shared it at once)"
json.dump(config, open(path, "w"), indent=1)
PY
done
wait "$check"
echo "$(elapsed) s: device check over"

for b in jax torch; do  # the benchmark worker alone on the GPU, if time is left
  left=$((budget - 40 - $(elapsed)))
  ((left > 30)) || break
  KERAS_BACKEND=$b timeout "$left" "$PYTHON" -m benchmarks.worker --out "$results/bench_$b.json" \
    --models "${bench_models[@]}" --repeats "$bench_repeats" --device-gemm >"$results/logs/bench_$b.log" 2>&1
  rc=$?
  echo "$(elapsed) s: benchmark $b exited $rc"
done

finished=()
for id in "$@"; do [[ -d "$work/runs/$id" ]] && finished+=("$work/runs/$id"); done
"$PYTHON" tools/gpu_transfer.py pack-runs "${finished[@]}" --extra "$results" --pieces "$work/pieces" --out "$OUT"
echo "$(elapsed) s: packed"
