"""Edge-popup helpers: per-layer top-k over scores, straight-through gradient.

Ramanujan et al. 2020 ("What's hidden in a randomly weighted neural
network?"): weights stay frozen at their random values; each weight has a
score and the forward pass keeps the top fraction of |score|. Here the top-k
is taken only among the positions the ER mask keeps.
"""

import math

import numpy as np
import keras
from keras import ops

from keras_er.backend_helpers import is_tracing

_ABOVE_INF_BITS = 0x7F800001  # int32 pattern just above float32 +inf


def score_mask(scores, mask, fraction):
    """0/1 tensor that keeps the top `fraction` of `|scores|` where `mask == 1`.

    Exactly `max(1, round(fraction * mask.sum()))` weights are kept; among
    equal `|scores|` at the threshold the lower flat indices win (trained
    scores do tie: 5 of the 22 layers of the popup ResNet20 zoo entry). The gradient
    reaches `scores` by the straight-through estimator, as in edge-popup: the
    forward value is exactly the hard 0/1 mask, the backward pass treats it
    as the identity in `|scores|` (so a negative score's gradient flips sign,
    and every step moves |score| the way the loss asks).
    """
    scores = ops.convert_to_tensor(scores)
    mask = ops.convert_to_tensor(mask)
    # Outside the mask the magnitude is -1: below every threshold.
    magnitude = ops.where(mask > 0, ops.abs(ops.cast(scores, "float32")), -1.0)
    n_active = ops.sum(ops.cast(mask > 0, "float32"))
    k = ops.maximum(ops.cast(ops.round(fraction * n_active), "int32"), 1)
    hard = ops.cast(_top_k_positions(ops.reshape(magnitude, (-1,)), k), scores.dtype)
    hard = ops.reshape(hard, ops.shape(scores))
    size = ops.abs(scores)
    return hard + (size - ops.stop_gradient(size))


def _top_k_positions(values, k):
    """Boolean: exactly the `k` largest of the flat float32 `values`.

    Ties at the k-th largest value go to the lowest indices, the same on
    every backend.
    """
    kth = _kth_largest(values, k)
    at_least = values >= kth

    def break_ties():  # a cumsum pass, only when there are ties to break
        above = values > kth
        tied = values == kth
        slots_for_ties = k - ops.cast(ops.count_nonzero(above), "int32")
        tie_rank = ops.cumsum(ops.cast(tied, "int32"))
        return ops.logical_or(above, ops.logical_and(tied, tie_rank <= slots_for_ties))

    if is_tracing():  # torch.compile/export: no data-dependent branch (same result)
        return break_ties()
    no_ties = ops.cast(ops.count_nonzero(at_least), "int32") == k
    return ops.cond(no_ties, lambda: at_least, break_ties)


def _eager_torch():
    return keras.backend.backend() == "torch" and not is_tracing()


def _kth_largest(values, k):
    """The k-th largest of the flat float32 `values` (found exactly)."""
    if _eager_torch():
        # Eager: a quickselect (top_k) is ~8x faster than a sort and than 31
        # counting passes.
        return ops.min(ops.top_k(values, int(k), sorted=False)[0])
    # Compiled (XLA): non-negative float32 values order like their int32 bit
    # patterns (negatives become negative ints), so a 31-step bisection over
    # patterns finds the exact k-th largest with one fused compare-and-count
    # per step, ~10x faster than a full sort.
    bits = ops.view(values, "int32")

    def step(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        enough = ops.count_nonzero(bits >= middle) >= k
        return ops.where(enough, middle, low), ops.where(enough, high, middle)

    bounds = (ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(_ABOVE_INF_BITS, "int32"))
    low, _ = ops.fori_loop(0, 31, step, bounds)
    return ops.view(low, "float32")


def topk_count(mask, fraction):
    """The number of weights `score_mask` keeps for a numpy `mask`."""
    n_active = np.float32(np.count_nonzero(mask))
    return max(1, int(np.round(np.float32(fraction) * n_active)))  # float32 as in call


def frozen_kernel(shape, fan_in, seed, dtype="float32"):
    """Frozen random weights N(0, 2 / fan_in), drawn in numpy from `seed`."""
    rng = np.random.default_rng([seed, 1])
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


def initial_scores(shape, fan_in, seed, dtype="float32"):
    """Kaiming-uniform scores U(-sqrt(6 / fan_in), sqrt(6 / fan_in))."""
    rng = np.random.default_rng([seed, 2])
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)
