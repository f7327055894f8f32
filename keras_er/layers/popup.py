"""Edge-popup helpers: per-layer top-k over scores, straight-through gradient.

Ramanujan et al. 2020 ("What's hidden in a randomly weighted neural
network?"): weights stay frozen at their random values; each weight has a
score and the forward pass keeps the top fraction of |score|. Here the top-k
is taken only among the positions the ER mask keeps.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_er.backend_helpers import is_tracing

_ABOVE_INF_BITS = 0x7F800001  # int32 pattern just above float32 +inf
_SAMPLE_SIZE = 8192  # about this many strided values estimate where the k-th largest lies
_MIN_SAMPLED = 65536  # smaller layers skip the estimate
_MARGIN_SDS = 4.0  # the bracket spans the estimate +- this many binomial standard deviations


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
    mask = ops.cast(ops.convert_to_tensor(mask), "float32")
    size = ops.abs(scores)
    k = ops.maximum(ops.cast(ops.round(fraction * ops.sum(mask)), "int32"), 1)  # mask is 0/1: the sum is exact
    magnitude = ops.reshape(ops.cast(ops.stop_gradient(size), "float32"), (-1,))
    mask = ops.reshape(mask, (-1,))
    if _eager_torch():
        values, kth, n_at_least = _eager_threshold(magnitude, mask, int(k))
    else:
        values = ops.where(mask > 0, magnitude, -1.0)  # outside the mask: below every threshold
        kth, n_at_least = _kth_largest(values, k)
    hard = ops.cast(_top_k_positions(values, k, kth, n_at_least), scores.dtype)
    return ops.reshape(hard, ops.shape(scores)) + (size - ops.stop_gradient(size))


def _eager_threshold(magnitude, mask, k):
    """(values, their k-th largest, how many are >= it) on eager torch, for a Python int `k`.

    Outside the mask the values are 0 (a product is ~3x faster than an eager
    torch.where), below the k-th largest whenever that is positive; else
    they are -1, below every threshold.
    """
    values = magnitude * mask
    kth, n_at_least = _kth_largest_eager(values, k)
    if not bool(kth > 0):  # fewer than k positive magnitudes inside the mask
        values = ops.where(mask > 0, magnitude, -1.0)
        kth, n_at_least = _kth_largest_eager(values, k)
    return values, kth, n_at_least


def _top_k_positions(values, k, kth, n_at_least):
    """Boolean: exactly the `k` largest of the flat `values`, given their k-th largest `kth`.

    `n_at_least` values are `>= kth`; when more than `k`, the ties at `kth`
    go to the lowest indices, the same on every backend.
    """
    at_least = values >= kth

    def break_ties():  # a cumsum pass, only when there are ties to break
        above = values > kth
        tied = values == kth
        slots_for_ties = k - ops.cast(ops.count_nonzero(above), "int32")
        tie_rank = ops.cumsum(ops.cast(tied, "int32"))
        return ops.logical_or(above, ops.logical_and(tied, tie_rank <= slots_for_ties))

    if is_tracing():  # torch.compile/export: no data-dependent branch (same result)
        return break_ties()
    return ops.cond(n_at_least == k, lambda: at_least, break_ties)


def _eager_torch():
    return keras.backend.backend() == "torch" and not is_tracing()


def _sample_ranks(n, k, stride):
    """1-based ranks, among `values[::stride]`, of values just above and just below the k-th largest."""
    expected = k * (-(-n // stride)) / n
    margin = _MARGIN_SDS * math.sqrt(expected) + 2.0
    return math.floor(expected - margin), math.ceil(expected + margin)


def _kth_largest_eager(values, k):
    """(k-th largest of `values`, how many values are >= it), for eager torch with a Python int `k`.

    A strided sample brackets the k-th largest; only the few values inside
    the bracket are gathered for an exact top_k (a full-size top_k is one
    slow single-threaded quickselect). Falls back to the full top_k when the
    bracket misses.
    """
    n = int(values.shape[0])
    stride = max(1, n // _SAMPLE_SIZE) | 1  # odd: the sample cycles through power-of-two channel layouts
    high_rank, low_rank = _sample_ranks(n, k, stride)
    sample = values[::stride]
    if n >= _MIN_SAMPLED and high_rank >= 1 and low_rank <= int(sample.shape[0]):
        top = ops.top_k(sample, low_rank)[0]
        high, low = top[high_rank - 1], top[low_rank - 1]
        candidates = ops.take(values, ops.nonzero(values >= low)[0])  # about k values: the rest of the work is small
        n_above = int(ops.count_nonzero(candidates > high))
        inside = ops.take(candidates, ops.nonzero(candidates <= high)[0])
        needed = k - n_above
        if 0 < needed <= int(inside.shape[0]):
            kth = ops.min(ops.top_k(inside, needed, sorted=False)[0])
            return kth, n_above + int(ops.count_nonzero(inside >= kth))
    kth = ops.min(ops.top_k(values, k, sorted=False)[0])
    return kth, int(ops.count_nonzero(values >= kth))


def _count_at_least(bits, threshold):
    return ops.sum(ops.cast(bits >= threshold, "int32"))


def _kth_largest(values, k):
    """(k-th largest of the flat float32 `values`, how many values are >= it), with static shapes.

    Non-negative float32 values order like their int32 bit patterns
    (negatives become negative ints), so a bisection over patterns finds the
    exact k-th largest with one fused compare-and-count per step, ~10x
    faster than a full sort under XLA. A sorted strided sample first narrows
    the range (~12 fewer steps); when it misses, the full range is searched.
    """
    bits = ops.view(values, "int32")
    n_active = _count_at_least(bits, 0)
    low, high, n_low = _sample_bracket(bits, k, n_active)

    def step(low, high, n_low):
        middle = low + (high - low) // 2
        n_middle = _count_at_least(bits, middle)
        enough = n_middle >= k
        return ops.where(enough, middle, low), ops.where(enough, high, middle), ops.where(enough, n_middle, n_low)

    if is_tracing():  # torch.export: a fixed trip count (steps past convergence change nothing)
        low, _, n_low = ops.fori_loop(0, 31, lambda _, bounds: step(*bounds), (low, high, n_low))
    else:
        low, _, n_low = ops.while_loop(lambda low, high, _: high - low > 1, step, (low, high, n_low))
    return ops.view(low, "float32"), n_low


def _sample_bracket(bits, k, n_active):
    """(low, high, count >= low): bit patterns with count(>= low) >= k > count(>= high)."""
    full = (ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(_ABOVE_INF_BITS, "int32"), n_active)
    n = int(bits.shape[0])
    if n < _MIN_SAMPLED:
        return full
    stride = max(1, n // _SAMPLE_SIZE) | 1
    sample = bits[::stride]
    m = int(sample.shape[0])
    expected = ops.cast(k, "float32") * (m / n)
    margin = _MARGIN_SDS * ops.sqrt(expected) + 2.0
    descending = ops.concatenate(
        [ops.convert_to_tensor([_ABOVE_INF_BITS], "int32"), ops.flip(ops.sort(sample)), ops.zeros((1,), "int32")]
    )
    high = ops.take(descending, ops.clip(ops.cast(ops.floor(expected - margin), "int32"), 0, m + 1))
    low = ops.maximum(ops.take(descending, ops.clip(ops.cast(ops.ceil(expected + margin), "int32"), 0, m + 1)), 0)
    n_low, n_high = _count_at_least(bits, low), _count_at_least(bits, high)
    hit = ops.logical_and(n_low >= k, n_high < k)
    return tuple(ops.where(hit, a, b) for a, b in zip((low, high, n_low), full))


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
