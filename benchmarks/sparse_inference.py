"""Could a sparse model infer faster than its dense twin on CPU? (numpy/scipy only)

Two routes for an ER-sparse conv layer, written as the im2col matmul
`patches (N·H·W, k·k·Cin) @ kernel (k·k·Cin, Cout)`:

1. Compaction: drop output channels whose kernel column is all zero and input
   rows no output uses. ER masks almost never empty a whole channel, so this
   is counted from the flagship's real masks.
2. Unstructured sparse matmul: the masked kernel as a scipy CSR matrix, timed
   against the dense BLAS matmul at the same shape, per density.
"""

import time

import numpy as np
import scipy.sparse

BATCH = 128


def _best_seconds(run, repeats=5):
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def sparse_matmul_speedup(rows=BATCH * 8 * 8, fan_in=3 * 3 * 64, outputs=64, densities=(0.2, 0.1, 0.05, 0.02)):
    """Dense-matmul time / CSR-matmul time for ResNet20's widest conv, per density."""
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(rows, fan_in)).astype("float32")
    kernel = rng.normal(size=(fan_in, outputs)).astype("float32")
    dense_seconds = _best_seconds(lambda: patches @ kernel)
    result = {"shape": [rows, fan_in, outputs], "dense_ms": dense_seconds * 1e3}
    for density in densities:
        sparse_t = scipy.sparse.csr_matrix((kernel * (rng.random(kernel.shape) < density)).T)
        seconds = _best_seconds(lambda matrix=sparse_t: (matrix @ patches.T).T)
        result[f"{density:g}"] = {"sparse_ms": seconds * 1e3, "speedup": dense_seconds / seconds}
    return result


def compactable_fraction(masks):
    """Fraction of conv weights a channel-compacted model could skip.

    `masks`: list of 0/1 kernels (kh, kw, cin, cout) or (in, out) arrays.
    """
    total = removable = 0
    for mask in masks:
        flat = mask.reshape(-1, mask.shape[-1])
        dead_outputs = ~flat.any(axis=0)
        dead_inputs = ~mask.reshape(-1, mask.shape[-2], mask.shape[-1]).any(axis=(0, 2))
        per_input = flat.shape[0] // mask.shape[-2]
        live = (flat.shape[0] - dead_inputs.sum() * per_input) * (~dead_outputs).sum()
        total += flat.size
        removable += flat.size - live
    return removable / total
