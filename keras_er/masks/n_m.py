"""N:M structured sparsity in numpy: every M consecutive weights along an axis keep exactly N.

The pattern sparse tensor cores accelerate (2:4 on NVIDIA Ampere and later;
`sparsity_m_by_n=(2, 4)` in TensorFlow Model Optimization, `NByM` in
jaxpruner). Groups run along a kernel's *reduction axis*, the one a matmul
sums over (a Dense kernel's input axis); `keras_er.masks.n_m_model.reduction_axis`
says which axis that is for each layer. A group is `M` consecutive positions
of that axis with every other index fixed, so a Dense kernel `(in, out)` has
`in / M * out` groups.

Everything here is numpy only and seeded: the same seed draws the same
masks on every machine and every Keras backend.

Examples:
    >>> mask = sample_n_m_masks([(8, 3)], [0], (2, 4), seed=0)[0]
    >>> mask.sum(), is_n_m(mask, (2, 4), axis=0)
    (np.int64(12), True)
    >>> group_counts(mask, 4, axis=0).tolist()  # (groups along the axis, other positions)
    [[2, 2, 2], [2, 2, 2]]
"""

import numbers

import numpy as np

from keras_er.arrays import nan_as_lowest
from keras_er.masks.sampling import layer_seeds


def validate_n_m(n_m, name="n_m"):
    """Return `n_m` as a tuple `(n, m)` of ints with `1 <= n < m`, or raise a clear TypeError/ValueError.

    `n == m` would keep every weight: it is refused (leave `n_m=None` for a dense model).

    >>> validate_n_m([2, 4])
    (2, 4)
    >>> validate_n_m((4, 4))
    Traceback (most recent call last):
    ...
    ValueError: `n_m` must be (N, M) with 1 <= N < M (N of every M weights kept); got (4, 4).
    """
    if isinstance(n_m, (str, bytes)) or not hasattr(n_m, "__len__") or len(n_m) != 2:
        raise TypeError(f"`{name}` must be a pair (N, M) of positive integers, like (2, 4); got {n_m!r}.")
    for value in n_m:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be a pair (N, M) of positive integers, like (2, 4); got {tuple(n_m)!r}.")
    n, m = int(n_m[0]), int(n_m[1])
    if not 1 <= n < m:
        raise ValueError(f"`{name}` must be (N, M) with 1 <= N < M (N of every M weights kept); got {(n, m)!r}.")
    return n, m


def fits(shape, m, axis):
    """Whether a kernel of `shape` splits into groups of `m` along `axis` (None: it has no such axis)."""
    return axis is not None and int(shape[axis]) % int(m) == 0


def group_view(array, m, axis):
    """`array` with `axis` moved last and split into `(..., length / m, m)`: one row per group."""
    array = np.asarray(array)
    moved = np.moveaxis(array, axis, -1)
    if moved.shape[-1] % m:
        raise ValueError(f"Axis {axis} of shape {array.shape} has length {moved.shape[-1]}, not a multiple of {m}.")
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def from_group_view(groups, shape, axis):
    """The inverse of `group_view` for an array of `shape`."""
    moved_shape = np.moveaxis(np.empty(shape, dtype=bool), axis, -1).shape
    return np.moveaxis(np.asarray(groups).reshape(moved_shape), -1, axis)


def group_counts(mask, m, axis):
    """Nonzeros per group of `m` along `axis`: shape `mask.shape` with `axis` divided by `m`."""
    counts = np.count_nonzero(group_view(mask, m, axis), axis=-1)
    return np.moveaxis(counts, -1, axis)


def is_n_m(mask, n_m, axis=0):
    """Whether every group of `M` consecutive entries of `mask` along `axis` has exactly `N` nonzeros.

    A mask whose axis is not a multiple of `M` is not N:M.

    >>> is_n_m(np.array([[1, 0, 1, 0], [0, 1, 1, 0]]), (2, 4), axis=1)
    True
    >>> is_n_m(np.array([[1, 1, 1, 0]]), (2, 4), axis=1)
    False
    """
    n, m = validate_n_m(n_m)
    mask = np.asarray(mask)
    if mask.ndim == 0 or not fits(mask.shape, m, axis):
        return False
    return bool(np.all(group_counts(mask, m, axis) == n))


def sample_n_m_masks(shapes, axes, n_m, seed=0):
    """Draw one random N:M mask per kernel: in each group, `N` of the `M` positions uniformly at random.

    Args:
        shapes: kernel shapes, one per layer.
        axes: the axis each kernel's groups run along (its reduction axis), one
            per layer; None, or an axis whose length is not a multiple of `M`,
            gives an all-ones (dense) mask.
        n_m: `(N, M)`.
        seed: non-negative integer; layer `i` uses the `i`-th child of
            `SeedSequence(seed)` (as `sample_masks` does).

    Returns:
        A list of `bool` numpy arrays with the given shapes.
    """
    n, m = validate_n_m(n_m)
    children = layer_seeds(seed, shapes, axes, "axes")
    masks = []
    for shape, axis, child in zip(shapes, axes, children):
        shape = tuple(int(d) for d in shape)
        if not fits(shape, m, axis):
            masks.append(np.ones(shape, dtype=bool))
            continue
        rng = np.random.Generator(np.random.PCG64(child))
        groups_shape = group_view(np.empty(shape, dtype=bool), m, axis).shape
        ranks = np.argsort(rng.random(groups_shape), axis=-1, kind="stable")
        groups = np.zeros(groups_shape, dtype=bool)
        np.put_along_axis(groups, ranks[..., :n], True, axis=-1)
        masks.append(from_group_view(groups, shape, axis))
    return masks


def keep_top_n_m(scores, active, n_m, axis):
    """Keep, in every group of `M` along `axis`, the `N` best-scoring active positions.

    Ties go to the lower index within the group (a stable ranking), so the
    result is a function of the arrays alone. A group with fewer than `N`
    active positions cannot become N:M: a ValueError (pruning never adds weights).

    >>> keep_top_n_m(np.array([[0.1, 0.9, 0.5, 0.5]]), np.ones((1, 4), bool), (2, 4), axis=1).astype(int)
    array([[0, 1, 1, 0]])
    """
    n, m = validate_n_m(n_m)
    scores, active = np.asarray(scores, dtype=np.float64), np.asarray(active).astype(bool)
    if scores.shape != active.shape:
        raise ValueError(f"Scores of shape {scores.shape} do not match the mask's shape {active.shape}.")
    short = int(np.count_nonzero(group_counts(active, m, axis) < n))
    if short:
        raise ValueError(
            f"{short} group(s) of {m} along axis {axis} have fewer than {n} active weights, so the mask cannot "
            f"become {n}:{m} (pruning never adds weights)."
        )
    ranked = nan_as_lowest(scores)
    ranked = np.where(active, ranked, -np.inf)
    view = group_view(ranked, m, axis)
    # Active positions first, then by score, ties to the lower index: a stable sort on (inactive, -score).
    order = np.lexsort((-view, ~group_view(active, m, axis)), axis=-1)
    groups = np.zeros(view.shape, dtype=bool)
    np.put_along_axis(groups, order[..., :n], True, axis=-1)
    return from_group_view(groups, scores.shape, axis)
