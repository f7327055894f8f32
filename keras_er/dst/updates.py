"""One drop-and-grow step on one layer's mask, in numpy only (no keras).

The k active weights of smallest magnitude are dropped and k positions that
were inactive before the update are grown, those of largest growth score:
`|dense gradient|` for RigL, uniform random numbers for SET (Evci et al. 2020,
"Rigging the Lottery", section 3). A weight dropped in this update is never
grown back in it, so the number of active weights is kept exactly. Ties go to
the lower flat index (a stable sort), so the result is a function of the
arrays alone.
"""

import numbers
from collections import namedtuple

import numpy as np

from keras_er.masks.n_m import from_group_view
from keras_er.masks.n_m import group_view
from keras_er.masks.n_m import is_n_m
from keras_er.masks.n_m import validate_n_m
from keras_er.pruning.select import ranking

Update = namedtuple("Update", ["mask", "dropped", "grown"])
Update.__doc__ = """The result of `drop_and_grow`: boolean arrays of the kernel's shape.

`mask`: the new mask; `dropped`: active before, inactive now; `grown`: inactive before, active now.
"""


def drop_and_grow(kernel, mask, scores, k):
    """Drop the `k` active weights of smallest `|kernel|`, grow the `k` inactive positions of largest `scores`.

    Args:
        kernel: the layer's kernel (numpy); only its values at active positions are read.
        mask: 0/1 (or bool) array of the kernel's shape: the active weights.
        scores: growth scores of the kernel's shape; only the inactive positions are read.
        k: how many weights to move; at most the number of active and of inactive weights.

    Returns:
        An `Update(mask, dropped, grown)` of boolean arrays; `mask` has as many ones as the old mask.

    Examples:
        >>> kernel = np.array([[0.5, 0.0], [-0.1, 0.9]])
        >>> mask = np.array([[1, 0], [1, 1]])
        >>> drop_and_grow(kernel, mask, scores=np.array([[0.0, 3.0], [0.0, 0.0]]), k=1).mask.astype(int)
        array([[1, 1],
               [0, 1]])
    """
    kernel, mask, scores = _check(kernel, mask, scores)
    active = np.flatnonzero(mask)
    inactive = np.flatnonzero(~mask)
    k = move_count(k, active.size, inactive.size)
    magnitudes = np.abs(kernel.reshape(-1)[active].astype(np.float64))
    dropped_flat = active[ranking(-magnitudes)[:k]]  # the smallest magnitudes, ties to the lower index
    grown_flat = inactive[ranking(scores.reshape(-1)[inactive])[:k]]
    dropped = np.zeros(mask.size, bool)
    dropped[dropped_flat] = True
    grown = np.zeros(mask.size, bool)
    grown[grown_flat] = True
    new_mask = (mask.reshape(-1) & ~dropped) | grown
    shape = mask.shape
    return Update(new_mask.reshape(shape), dropped.reshape(shape), grown.reshape(shape))


def drop_and_grow_n_m(kernel, mask, scores, k, n_m, axis):
    """`drop_and_grow` that keeps an N:M mask N:M: every group grows back as many weights as it lost.

    The `k` active weights of smallest `|kernel|` are dropped, at most
    `min(N, M - N)` per group (a group cannot grow more than the `M - N`
    positions it had free), and each group grows, among its positions that
    were inactive before the update, as many as it lost, those of largest
    `scores`. Ties go to the lower index in the groups' order (`group_view`):
    the result is a function of the arrays alone.

    Args:
        kernel, mask, scores: as in `drop_and_grow`; `mask` must be N:M along `axis`.
        k: weights to move, at most the number of active and of inactive weights (as in
            `drop_and_grow`; with `min(N, M - N)` per group, that many can always move).
        n_m: `(N, M)`.
        axis: the axis the groups run along (the layer's reduction axis).

    Examples:
        >>> kernel = np.array([[0.5, 0.0, -0.1, 0.0], [0.0, 0.9, 0.0, 0.2]])
        >>> mask = kernel != 0
        >>> scores = np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 0.0]])
        >>> drop_and_grow_n_m(kernel, mask, scores, k=2, n_m=(2, 4), axis=1).mask.astype(int)
        array([[1, 0, 0, 1],
               [1, 1, 0, 0]])
    """
    kernel, mask, scores = _check(kernel, mask, scores)
    n, m = validate_n_m(n_m)
    if not is_n_m(mask, (n, m), axis):
        raise ValueError(f"`mask` is not {n}:{m} along axis {axis}.")
    k = move_count(k, int(mask.sum()), int(mask.size - mask.sum()))
    active_g = group_view(mask, m, axis).reshape(-1, m)
    magnitudes = np.abs(group_view(kernel, m, axis).reshape(-1).astype(np.float64))
    active = np.flatnonzero(active_g.ravel())
    order = active[ranking(-magnitudes[active])]  # smallest first, ties to the lower index
    groups = order // m
    by_group = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[by_group], groups[by_group])
    rank_in_group = np.empty(order.size, dtype=np.int64)
    rank_in_group[by_group] = np.arange(order.size) - starts
    dropped_flat = order[rank_in_group < min(n, m - n)][:k]
    lost = np.bincount(dropped_flat // m, minlength=active_g.shape[0])
    growth = np.where(active_g, -np.inf, group_view(scores, m, axis).reshape(-1, m).astype(np.float64))
    growth_rank = np.argsort(np.argsort(-growth, axis=-1, kind="stable"), axis=-1, kind="stable")
    grown_g = growth_rank < lost[:, None]
    dropped_g = np.zeros(active_g.size, dtype=bool)
    dropped_g[dropped_flat] = True
    dropped_g = dropped_g.reshape(active_g.shape)
    shape = group_view(mask, m, axis).shape

    def back(groups_array):
        return from_group_view(groups_array.reshape(shape), mask.shape, axis)

    return Update(back((active_g & ~dropped_g) | grown_g), back(dropped_g), back(grown_g))


def move_count(k, active, inactive):
    """`k` checked against the `active` and `inactive` counts of a layer."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"`k` must be a non-negative int; got {k!r}.")
    if k > min(active, inactive):
        raise ValueError(
            f"`k`={k} weights cannot move: the mask has {active} active and {inactive} inactive positions."
        )
    return int(k)


def moves_for(fraction, active, inactive):
    """`round(fraction * active)`, capped by the `inactive` positions there are to grow into."""
    if not isinstance(fraction, numbers.Real) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
        raise ValueError(f"`fraction` must be a finite number in [0, 1]; got {fraction!r}.")
    return min(int(round(fraction * active)), active, inactive)


def random_scores(shape, seed, step, layer_index):
    """SET's growth scores: uniform numbers from `(seed, step, layer_index)`, the same on every backend.

    Growing the `k` largest of them among the inactive positions picks `k`
    of those positions uniformly at random.
    """
    return np.random.default_rng([seed, step, layer_index]).random(tuple(shape))


def _check(kernel, mask, scores):
    kernel = np.asarray(kernel)
    mask = np.asarray(mask)
    scores = np.asarray(scores)
    if not np.isin(mask, (0, 1)).all():
        raise ValueError(f"`mask` must be binary (0/1 or bool); got values {np.unique(mask)[:5].tolist()}.")
    if kernel.shape != mask.shape or scores.shape != mask.shape:
        raise ValueError(
            f"`kernel`, `mask` and `scores` must have one shape; got {kernel.shape}, {mask.shape}, {scores.shape}."
        )
    return kernel, mask.astype(bool), scores
