"""The fastest correct CPU training path per backend, as measured by `python -m benchmarks knobs`.

Two parts, because some settings must exist before the framework loads:

- `environment(backend)`: environment variables to set before `import keras` (the benchmarks set them next to
  `KERAS_BACKEND`; none wins today, so the CLI sets none); setting them later has no effect.
- `compile_options(backend, model_name)`: keyword arguments for `model.compile` (e.g. `jit_compile`).

The layers are the rest of the fast path: the architectures build `keras_er.layers.Conv2D` (a matmul where
XLA:CPU's convolution is pathologically slow, `keras_er.layers.conv_paths`) and `keras_er.layers.BatchNormalization`
(TensorFlow's fused kernel in training steps); both choose per backend by themselves.

Measurements: benchmarks/results/knobs.md (2-core AMD EPYC, batch 128, dense train step). The numbers behind
each choice are in the comments of `_COMPILE` and `_ENVIRONMENT`. Only settings that change speed, never results
beyond float32 round-off, are chosen here (the knob benchmark checks the first two losses against Keras' default).
"""

# Per backend: compile arguments (model name -> overrides in `_COMPILE_PER_MODEL`). Dense train step, img/s,
# ResNet20 / VGG16, measured with the two training jobs paused but other processes sharing the 2 vCPUs
# (TF's VGG16 reached 87 img/s = 83% of the GEMM bound on the idle machine, 2026-11-26):
_COMPILE = {
    # Keras "auto": graph mode with oneDNN, no XLA on a CPU-only machine (XLA on a GPU, not measured here).
    # graph 219 / 38.3 (72 GFLOP/s, about the numpy GEMM bound); XLA (jit_compile=True) 68 / 8.3 (0.31x / 0.22x);
    # oneDNN off 142 / 10.6; XLA + oneDNN off 60 / 6.4; channels_first 150 / 35.4; 1 inter-op thread 209 / 32.2.
    "tensorflow": {},
    # Eager (Keras "auto"). torch.compile (jit_compile=True) did not finish compiling ResNet20 + VGG16 within
    # 240 s on 2 shared cores: never chosen. channels_first: 1.27x / 1.03x in one run, 0.5x / 1.5x in the next
    # (noise; the zoo's models are channels_last anyway).
    "torch": {},
    # Always XLA. XLA flags (oneDNN, XNNPACK, Eigen single-threaded, thunk runtime off: no longer supported in
    # jax 0.10.2, 512-bit vectors, concurrency scheduler) measured 0.85-1.07x, noise (idle machine, 2026-11-26);
    # the win was in the layers: keras_er.layers.conv_paths (dense VGG16 14.6 -> 56.2 img/s in knobs.md).
    "jax": {},
}
_COMPILE_PER_MODEL = {}

# Per backend: environment variables that must be set before the framework is imported.
_ENVIRONMENT = {
    "tensorflow": {},
    # torch's own default (all cores). On the idle 2-core machine (2026-11-26) one OpenMP thread lost:
    # 168 / 36 img/s against 218 / 63 with 2 threads (0.77x / 0.58x). It had won (178 / 28 against 35 / 10)
    # only while other processes held a core: torch's OpenMP barriers then stall. Set OMP_NUM_THREADS=1
    # yourself when jobs share the cores (tools/queue.sh does).
    "torch": {},
    "jax": {},
}


def compile_options(backend, model_name=None):
    """Keyword arguments for `model.compile` on `backend` (and `model_name`, if it has its own).

    Example:

    >>> isinstance(compile_options("jax", "resnet20"), dict)
    True
    """
    return {**_COMPILE.get(backend, {}), **_COMPILE_PER_MODEL.get((backend, model_name), {})}


def environment(backend, current=None):
    """Environment variables to set before `import keras` on `backend`; `XLA_FLAGS` extends `current`'s.

    Example:

    >>> environment("unknown-backend")
    {}
    """
    current = {} if current is None else current
    wanted = dict(_ENVIRONMENT.get(backend, {}))
    if "XLA_FLAGS" in wanted and current.get("XLA_FLAGS"):
        wanted["XLA_FLAGS"] = f"{current['XLA_FLAGS']} {wanted['XLA_FLAGS']}"
    return wanted
