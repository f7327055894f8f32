"""What a train step costs and what this machine can do: FLOPs from the architecture, GEMM bound, CPU facts.

Convention (stated under every table that uses it): forward FLOPs = 2 x multiply-adds of every Conv/Dense
(incl. depthwise and keras_er's masked twins, counted dense: the mask is applied to a dense kernel); BatchNorm,
activations, pooling, bias and the loss are not counted. A train step is 3 x forward (forward, gradient of the
input, gradient of the kernel). The bound is a numpy float32 matmul (n = 2048) timed in the same run, the better
of all BLAS threads and one (on the 2-vCPU machine of the README, one thread is faster: 75 vs 64 GFLOP/s).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TRAIN_FORWARD_RATIO = 3
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
_CONV_KINDS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense")


def _linear_kind(layer):
    """'Conv2D', 'Dense', ... for the layers counted here (Keras and keras_er Masked*), else None."""
    name = type(layer).__name__.removeprefix("Masked")
    return name if name in _CONV_KINDS else None


def _sublayers(model):
    """Every leaf layer, nested models opened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _sublayers(layer)
        else:
            yield layer


def layer_macs(layer):
    """Multiply-adds of one Conv/Dense call per example: output elements x kernel size / output channels."""
    output = tuple(layer.output.shape)[1:]
    channel_axis = 0 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1
    return int(np.prod(output)) * int(np.prod(layer.kernel.shape)) // output[channel_axis]


def forward_flops(model):
    """FLOPs of one example's forward pass (2 x multiply-adds of every Conv/Dense layer)."""
    return 2 * sum(layer_macs(layer) for layer in _sublayers(model) if _linear_kind(layer))


def train_flops(model):
    """FLOPs of one example's train step: `TRAIN_FORWARD_RATIO` x forward."""
    return TRAIN_FORWARD_RATIO * forward_flops(model)


def _matmul_seconds(rows, inner, cols, repeats, rng):
    """Best seconds of a numpy float32 (rows x inner) @ (inner x cols) matmul, after one warm-up."""
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = rng.standard_normal((inner, cols), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(n=2048, repeats=5):
    """Best GFLOP/s of a numpy float32 (n x n) @ (n x n) matmul (2 n^3 FLOPs), after one warm-up."""
    return 2 * n**3 / _matmul_seconds(n, n, n, repeats, np.random.default_rng(0)) / 1e9


def device_gemm_gflops(n=8192, repeats=5):
    """Best GFLOP/s of a float32 (n x n) @ (n x n) `keras.ops.matmul` on the backend's default device.

    The bound for an accelerator, at the backend's own float32 matmul precision
    (JAX may use TF32 on a GPU, torch does not by default); synchronised by
    reading one element back.
    """
    import keras

    a = keras.random.normal((n, n), seed=0)
    b = keras.random.normal((n, n), seed=1)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def layer_gemm_shapes(layer, batch):
    """(M, K, N) of a Conv/Dense layer's forward pass as one matmul (im2col): M output positions in the batch,
    K the kernel's fan-in, N output channels (depthwise kernels: N = 1 per input channel, M times channels)."""
    output = tuple(layer.output.shape)[1:]
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    out_channels = output[0] if channels_first else output[-1]
    positions = batch * int(np.prod(output)) // out_channels
    kernel = tuple(layer.kernel.shape)
    if type(layer).__name__.removeprefix("Masked").startswith("Depthwise"):
        return positions * out_channels, int(np.prod(kernel[:-2])), 1
    return positions, int(np.prod(kernel)) // kernel[-1], kernel[-1]


def model_gemm_gflops(model, batch=128, repeats=3):
    """GFLOP/s numpy reaches on the model's own GEMMs: every Conv/Dense layer's forward (M,K)@(K,N), input gradient
    (M,N)@(N,K) and kernel gradient (K,M)@(M,N), total FLOPs over the summed best-of-`repeats` times.

    A bound for that model's train step that, unlike the 2048^3 GEMM, accounts for its small matrices (ResNet20's
    16-channel layers: K = 144, N = 16); convolution libraries can beat it (Winograd, fused im2col), so a backend
    may exceed 100%.
    """
    rng = np.random.default_rng(0)
    flops = seconds = 0.0
    for layer in _sublayers(model):
        if not _linear_kind(layer):
            continue
        m, k, n = layer_gemm_shapes(layer, batch)
        for rows, inner, cols in ((m, k, n), (m, n, k), (k, m, n)):
            flops += 2 * rows * inner * cols
            seconds += _matmul_seconds(rows, inner, cols, repeats, rng)
    return flops / seconds / 1e9


def gemm_bound(n=2048):
    """{"threads_all", "threads_1": GFLOP/s of `gemm_gflops` in this process and in one with one BLAS thread,
    "gflops": the better}."""
    one = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = f"from benchmarks.roofline import gemm_gflops; print(gemm_gflops({n}))"
    root = str(Path(__file__).resolve().parents[1])
    env = {**one, "PYTHONPATH": os.pathsep.join(filter(None, [root, one.get("PYTHONPATH")]))}
    single = float(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True).stdout)
    threaded = gemm_gflops(n)
    return {"threads_all": threaded, "threads_1": single, "gflops": max(threaded, single)}


def cpu_facts(cpuinfo="/proc/cpuinfo"):
    """{"cpu": model name, "cores": usable cores, "isa": the ISA flags that matter for float32/bf16 GEMM}."""
    path = Path(cpuinfo)
    text = path.read_text() if path.exists() else ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": fields.get("model name", "unknown"),
        "cores": cores,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }
