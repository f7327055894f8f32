#!/usr/bin/env bash
# One prepared check of keras_er on a lent GPU machine; DEVICE_CHECK_CPU=1 runs the
# same code on this CPU on a tiny setting (CI does, so the script never rots).
#
#   bash tools/device_check.sh prepare   # here, once: wheels -> .whl/, data -> .device/
#   bash tools/device_check.sh           # there (carry .whl and .device): results -> $OUT
#   DEVICE_CHECK_CPU=1 bash tools/device_check.sh   # here: tiny, on the CPU
#
# The GPU machine has torch and JAX with CUDA but no keras, no TensorFlow and no
# network: `prepare` downloads keras and the two packages it lacks there as wheels
# for Python 3.12 (x86-64), writes the first 2,000 CIFAR-10 test images and every
# zoo entry's predictions on them on this CPU. The check runs torch and JAX, each
# in its own process under a time limit, and writes device_check.{json,md} (and
# one JSON per backend) into $OUT; it exits 1 if any check failed.
#
# Settings (environment): DEVICE_CHECK_BACKENDS (default "torch jax" on a GPU,
# "tensorflow torch jax" on the CPU), DEVICE_CHECK_SECONDS (per backend; 220 on a
# GPU, 600 on the CPU), DEVICE_CHECK_IMAGES, DEVICE_CHECK_MODELS, DEVICE_CHECK_DATA (a
# folder with `prepare`'s expected.json and a cifar10.npz; default .device, on the CPU
# only when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# No JAX preallocation: the pytest section starts a second JAX process on the same GPU.
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

if [[ "${1:-}" == prepare ]]; then
  # The versions installed here, so both machines run the same keras.
  mapfile -t wheels < <("$PYTHON" -c 'from importlib.metadata import version
for name in ("keras", "namex", "optree"): print(f"{name}=={version(name)}")')
  rm -rf .whl && mkdir -p .whl
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
  export KERAS_ER_DATA="${KERAS_ER_DATA:-$(cd .. && pwd)/shared/data}"
  "$PYTHON" -m tools.device_check prepare --dir .device --images 2000
  du -sh .whl .device
  exit 0
fi

if [[ -n "${DEVICE_CHECK_CPU:-}" ]]; then
  OUT="${OUT:-$(mktemp -d)}"
  backends="${DEVICE_CHECK_BACKENDS:-tensorflow torch jax}"
  seconds="${DEVICE_CHECK_SECONDS:-600}"
  export KERAS_ER_DATA="${KERAS_ER_DATA:-$(cd .. && pwd)/shared/data}"
  settings=(--cpu --images "${DEVICE_CHECK_IMAGES:-100}" --models ${DEVICE_CHECK_MODELS:-resnet20}
            --batch 4 --repeats 1 --warmup 1 --tests tests/masks/test_sampling.py)
  data="${DEVICE_CHECK_DATA:-.device}"
  [[ -d "$data" ]] && settings+=(--data-dir "$data")
else
  OUT="${OUT:?on the GPU machine \$OUT names the folder that comes back}"
  backends="${DEVICE_CHECK_BACKENDS:-torch jax}"
  seconds="${DEVICE_CHECK_SECONDS:-220}"
  if [[ ! -d .whl || ! -f "${DEVICE_CHECK_DATA:-.device}/expected.json" ]]; then
    echo "device_check: run 'bash tools/device_check.sh prepare' here first and carry .whl and .device" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/device_check_site .whl/*.whl
  export PYTHONPATH="/tmp/device_check_site"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  settings=(--data-dir "${DEVICE_CHECK_DATA:-.device}" --images "${DEVICE_CHECK_IMAGES:-2000}"
            --models ${DEVICE_CHECK_MODELS:-resnet20 vgg16})
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

for backend in $backends; do
  echo "=== device check, KERAS_BACKEND=$backend (limit ${seconds} s)"
  KERAS_BACKEND=$backend timeout "$seconds" "$PYTHON" -m tools.device_check run \
    --out "$OUT/$backend.json" "${settings[@]}" || echo "device_check: $backend exited $?" >&2
done
# shellcheck disable=SC2086  # $backends is a list of words
"$PYTHON" -m tools.device_check report "$OUT" --expect $backends
