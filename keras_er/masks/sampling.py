"""Seeded numpy sampling of Erdos-Renyi masks.

Masks are drawn once, in numpy, from `numpy.random.SeedSequence(seed)`, so
the same seed gives bit-identical masks on every machine and every Keras
backend, and sampling never touches numpy's or Python's global RNG.
"""

import numpy as np

from keras_er import arguments

SAMPLING_METHODS = ("bernoulli", "exact")  # how `sample_masks` draws: see its `method`


def layer_seeds(seed, shapes, per_layer, name):
    """One child of `SeedSequence(seed)` per shape; refuses a bad `seed` or a `name` list of another length."""
    arguments.seed(seed)
    if len(shapes) != len(per_layer):
        raise ValueError(f"`shapes` has {len(shapes)} entries but `{name}` has {len(per_layer)}.")
    return np.random.SeedSequence(int(seed)).spawn(len(shapes))


def sample_masks(shapes, densities, seed=0, method="exact", repair_flow=False):
    """Draw one random 0/1 mask per kernel shape.

    Args:
        shapes: kernel shapes, one per layer.
        densities: probability of keeping each weight, one per layer (for
            example from `layer_densities`).
        seed: non-negative integer; layer `i` uses the `i`-th child of
            `SeedSequence(seed)`, so a layer's mask does not depend on the
            shapes of the layers after it.
        method: `"bernoulli"` keeps each weight independently with
            probability `p` (an Erdos-Renyi graph G(n, p)); `"exact"` keeps
            exactly `round(p * n)` weights chosen uniformly (G(n, m)).
        repair_flow: if True, give every output unit (last axis) that has no
            incoming weight one random incoming weight, and every input unit
            (second-to-last axis) that has no outgoing weight one random
            outgoing weight. This adds a few weights.

    Returns:
        A list of `bool` numpy arrays with the given shapes.

    Examples:
        >>> masks = sample_masks([(3, 3, 3, 16), (64, 10)], [0.5, 0.1], seed=0,
        ...                      method="exact")
        >>> [int(m.sum()) for m in masks]
        [216, 64]
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"Unknown `method` {method!r}; expected one of {', '.join(SAMPLING_METHODS)}.")
    children = layer_seeds(seed, shapes, densities, "densities")
    masks = []
    for shape, density, child in zip(shapes, densities, children):
        if not 0.0 <= density <= 1.0:
            raise ValueError(f"Every density must be in [0, 1]; got {density}.")
        rng = np.random.Generator(np.random.PCG64(child))
        mask = _draw(tuple(int(d) for d in shape), float(density), method, rng)
        if repair_flow:
            _repair_flow(mask, rng)
        masks.append(mask)
    return masks


def _draw(shape, density, method, rng):
    size = int(np.prod(shape))
    if method == "bernoulli":
        return rng.random(shape) < density
    flat = np.zeros(size, dtype=bool)
    flat[rng.permutation(size)[: int(round(density * size))]] = True
    return flat.reshape(shape)


def _repair_flow(mask, rng):
    """In place: connect units with zero in-degree or zero out-degree."""
    if mask.ndim < 2:
        raise ValueError(f"`repair_flow` needs kernels of rank >= 2; got {mask.shape}.")
    units = mask.reshape(-1, mask.shape[-2], mask.shape[-1]).copy()  # (field, in, out)
    field, n_in, n_out = units.shape
    for out in np.flatnonzero(~units.any(axis=(0, 1))):
        units[rng.integers(field), rng.integers(n_in), out] = True
    for inp in np.flatnonzero(~units.any(axis=(0, 2))):
        units[rng.integers(field), inp, rng.integers(n_out)] = True
    mask[...] = units.reshape(mask.shape)
