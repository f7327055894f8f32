"""Edge-popup helpers: per-layer top-k over scores, straight-through gradient.

Ramanujan et al. 2020 ("What's hidden in a randomly weighted neural
network?"): weights stay frozen at their random values; each weight has a
score and the forward pass keeps the top fraction of |score|. Here the top-k
is taken only among the positions the ER mask keeps.
"""

import math

import numpy as np
from keras import ops


def score_mask(scores, mask, fraction):
    """0/1 tensor that keeps the top `fraction` of `|scores|` where `mask == 1`.

    The number kept is `max(1, round(fraction * mask.sum()))`. Ties at the
    threshold (measure-zero for continuous scores) are all kept. The gradient
    reaches `scores` by the straight-through estimator: the forward value is
    the hard 0/1 mask, the backward pass treats it as the identity in
    `scores`.
    """
    scores = ops.convert_to_tensor(scores)
    mask = ops.convert_to_tensor(mask)
    kept = ops.cast(mask > 0, scores.dtype)
    magnitude = ops.where(mask > 0, ops.abs(scores), -ops.ones_like(scores))
    flat = ops.sort(ops.reshape(magnitude, (-1,)))
    n_active = ops.sum(ops.cast(mask > 0, "float32"))
    k = ops.maximum(ops.cast(ops.round(fraction * n_active), "int32"), 1)
    threshold = ops.take(flat, ops.shape(flat)[0] - k)
    hard = ops.cast(magnitude >= threshold, scores.dtype) * kept
    return hard + scores - ops.stop_gradient(scores)


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
