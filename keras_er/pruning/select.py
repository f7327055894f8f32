"""Scores and budgets -> 0/1 masks, in numpy only (no keras import).

Pruning keeps the highest-scoring weights among those still active (mask 1):
pruning a sparse model makes it sparser, never denser. Rankings are exact and
deterministic: a tie goes to the lower flat index (and, across layers, to the
earlier layer). `ranking` is the one ranking of keras_er (pruning, and DST's
drop and growth); on its own a NaN ranks below every number, but every caller
that ranks a layer's scores (`prune`, `GradualPruning`, `imp`, the DST
callbacks) first refuses non-finite scores with `check_finite_scores`, naming
the layer and the method, before any mask changes.

Budgets are weight counts: `global_count` for one ranking over all layers,
`layer_counts` for a per-layer density scheme (`keras_er.masks.layer_densities`).

Examples:
    >>> scores = [np.array([[0.5, 0.1], [0.3, 0.9]]), np.array([0.2, 0.7, 0.4])]
    >>> active = [np.ones((2, 2), bool), np.array([True, False, True])]
    >>> [m.astype(int).tolist() for m in select_global(scores, active, 3)]
    [[[1, 0], [0, 1]], [0, 0, 1]]
    >>> [m.astype(int).tolist() for m in select_per_layer(scores, active, [1, 2])]
    [[[0, 0], [0, 1]], [1, 0, 1]]
"""

import numpy as np

from keras_er import arguments
from keras_er.arrays import nan_as_lowest
from keras_er.masks.schemes import layer_densities
from keras_er.masks.schemes import validate_density


def ranking(scores):
    """Flat positions of `scores`, best first; ties go to the lower flat index, NaN last."""
    flat = nan_as_lowest(scores).ravel()
    return np.argsort(-flat, kind="stable")


def check_finite_scores(scores, names, what, hint):
    """Refuse non-finite scores before they rank anything: a ValueError naming the layer and `what` scored it.

    Args:
        scores: one array per layer.
        names: the layers' names, in the same order.
        what: who scored them, as the message's subject ("SNIP scores", "RigL growth scores").
        hint: what to check, the end of the message ("check the data batch").

    >>> check_finite_scores([np.ones(2), np.array([np.nan, 1.0])], ["a", "b"], "SNIP scores", "check the data batch")
    Traceback (most recent call last):
    ...
    ValueError: SNIP scores of layer 'b' contain 1 non-finite value (NaN/inf); check the data batch.
    """
    for score, name in zip(scores, names):
        score = np.asarray(score)
        if score.dtype.kind not in "biuf":
            raise ValueError(f"{what} of layer '{name}' must be real numbers; got an array of dtype {score.dtype}.")
        bad = int(score.size - np.count_nonzero(np.isfinite(score)))
        if bad:
            values = "value" if bad == 1 else "values"
            raise ValueError(f"{what} of layer '{name}' contain {bad} non-finite {values} (NaN/inf); {hint}.")


def keep_top(scores, active, count):
    """A bool mask of `active`'s shape keeping the `count` best-scoring active positions."""
    scores, active = _pair(scores, active)
    count = _count(count)
    order = ranking(scores)
    order = order[active.ravel()[order]]
    if count > order.size:
        raise ValueError(f"Cannot keep {count} weights: only {order.size} are active (pruning never adds weights).")
    keep = np.zeros(active.size, dtype=bool)
    keep[order[:count]] = True
    return keep.reshape(active.shape)


def select_global(scores, active, count, min_per_layer=1):
    """Keep the `count` best active weights over all layers, each layer keeping at least `min_per_layer`.

    Each layer's `min_per_layer` best active weights are reserved first (a
    layer with fewer active weights keeps them all), then the rest of the
    budget goes to the best remaining weights of any layer. The total is
    `max(count, reserved)`, so `count` is met exactly whenever it covers the
    reserved weights.

    Args:
        scores: one array per layer.
        active: one bool array per layer (same shapes); only these positions can be kept.
        count: the number of weights to keep in total.
        min_per_layer: weights each layer keeps whatever its scores (SynFlow
            and the other methods must not cut a layer off entirely).

    Returns:
        One bool mask per layer.
    """
    scores, active = _pairs(scores, active)
    count = _count(count)
    min_per_layer = _count(min_per_layer, "min_per_layer")
    total_active = sum(int(a.sum()) for a in active)
    if count > total_active:
        raise ValueError(f"Cannot keep {count} weights: only {total_active} are active (pruning never adds weights).")
    masks = [keep_top(s, a, min(min_per_layer, int(a.sum()))) for s, a in zip(scores, active)]
    remaining = count - sum(int(m.sum()) for m in masks)
    if remaining <= 0:
        return masks
    candidates = [(a & ~m).ravel() for a, m in zip(active, masks)]
    flat_scores = np.concatenate([np.asarray(s, np.float64).ravel()[c] for s, c in zip(scores, candidates)])
    owners = np.concatenate([np.full(int(c.sum()), i) for i, c in enumerate(candidates)])
    positions = np.concatenate([np.flatnonzero(c) for c in candidates])
    # Candidates are laid out layer by layer, in flat order: the stable ranking
    # breaks ties by layer, then by lower flat index.
    chosen = ranking(flat_scores)[:remaining]
    flat_masks = [m.ravel().copy() for m in masks]
    for layer in np.unique(owners[chosen]):
        flat_masks[layer][positions[chosen[owners[chosen] == layer]]] = True
    return [f.reshape(m.shape) for f, m in zip(flat_masks, masks)]


def select_per_layer(scores, active, counts):
    """Keep the `counts[i]` best active weights of layer `i`; one bool mask per layer."""
    scores, active = _pairs(scores, active)
    if len(counts) != len(scores):
        raise ValueError(f"`counts` has {len(counts)} entries for {len(scores)} layers.")
    return [keep_top(s, a, c) for s, a, c in zip(scores, active, counts)]


def global_count(sizes, density):
    """`round(density * total)`: the number of weights a global ranking keeps."""
    return int(round(validate_density(density) * int(np.sum(sizes))))


def layer_counts(shapes, density, scheme, active_counts=None):
    """Per-layer budgets `max(1, round(d_i * n_i))` for `layer_densities(shapes, density, scheme)`.

    With `active_counts`, a layer's budget is capped at the weights it still has
    (a scheme may give a layer more than an earlier pruning left it).
    """
    densities = layer_densities([tuple(s) for s in shapes], density, scheme)
    counts = [max(1, int(round(d * int(np.prod(s))))) for d, s in zip(densities, shapes)]
    if active_counts is not None:
        counts = [min(c, int(a)) for c, a in zip(counts, active_counts)]
    return counts


def _count(value, name="count"):
    return arguments.integer(value, name)


def _pair(scores, active):
    scores, active = np.asarray(scores), np.asarray(active)
    if scores.shape != active.shape:
        raise ValueError(f"Scores of shape {scores.shape} do not match the mask's shape {active.shape}.")
    if active.dtype != bool:
        if not np.isin(active, (0, 1)).all():
            raise ValueError("`active` must be a 0/1 (or bool) array.")
        active = active.astype(bool)
    return scores, active


def _pairs(scores, active):
    if len(scores) != len(active):
        raise ValueError(f"Got {len(scores)} score arrays for {len(active)} masks.")
    pairs = [_pair(s, a) for s, a in zip(scores, active)]
    return [p[0] for p in pairs], [p[1] for p in pairs]
