"""Per-layer densities for a target global density.

Every scheme returns densities whose parameter-weighted mean equals the
target (up to float rounding), so `density` always means the fraction of
weights kept in the whole network. Layers named in `dense_layers` are kept
at density 1 and the remaining layers share what is left of the budget.
"""

import math
import numbers

import numpy as np

from keras_er.registry import Registry


def register_scheme(name, densities_fn):
    """Add a layer-wise density scheme under `name` (the CLI and zoo pick it up).

    `densities_fn(shapes, sizes, budget)` gets the kernel shapes and sizes of
    the layers not kept dense and the number of weights they may keep, and
    returns one density per layer, each in (0, 1], with
    `sum(densities * sizes) == budget`. `proportional_scheme(weight_fn)` makes
    one from a per-layer weight, as ERK is made from `sum(shape) / prod(shape)`.

    Examples:
        >>> register_scheme("fan_in", proportional_scheme(lambda shape: 1 / math.prod(shape[:-1])))
        >>> "fan_in" in scheme_names()
        True
        >>> unregister_scheme("fan_in")
    """
    SCHEMES.register(name, densities_fn)


def unregister_scheme(name):
    """Remove a scheme added with `register_scheme` (built-in schemes stay)."""
    SCHEMES.unregister(name)


def scheme_names():
    """The names of every scheme, built-in ones first."""
    return tuple(SCHEMES)


def proportional_scheme(weight_fn):
    """A scheme whose densities are `eps * weight_fn(shape)`, capped at 1."""

    def densities(shapes, sizes, budget):
        weights = np.array([float(weight_fn(tuple(shape))) for shape in shapes])
        return _capped_proportional(weights, sizes, budget)

    return densities


def validate_density(density, name="density"):
    """Return `density` as a float in (0, 1], or raise a clear error."""
    if isinstance(density, bool) or not isinstance(density, numbers.Real):
        raise TypeError(f"`{name}` must be a number in (0, 1]; got {density!r} of type {type(density).__name__}.")
    density = float(density)
    if not math.isfinite(density) or not 0.0 < density <= 1.0:
        raise ValueError(f"`{name}` must be in (0, 1]; got {density!r}.")
    return density


def validate_scheme(scheme):
    SCHEMES.lookup(scheme.lower() if isinstance(scheme, str) else scheme, "scheme")
    return scheme.lower()


def resolve_dense_layers(dense_layers, num_layers):
    """Turn `("first", "last", 3, -2)` into a sorted tuple of layer indices."""
    if isinstance(dense_layers, (str, int)):
        dense_layers = (dense_layers,)
    indices = set()
    for item in dense_layers:
        if item == "first":
            indices.add(0)
        elif item == "last":
            indices.add(num_layers - 1)
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not -num_layers <= item < num_layers:
                raise ValueError(f"`dense_layers` index {item} is out of range for {num_layers} layers.")
            indices.add(int(item) % num_layers)
        else:
            raise ValueError(f"`dense_layers` entries must be 'first', 'last' or a layer index; got {item!r}.")
    return tuple(sorted(indices))


def layer_densities(shapes, density, scheme="erk", *, dense_layers=()):
    """Per-layer densities for a target global `density`.

    Args:
        shapes: kernel shapes, one per sparsifiable layer, in network order
            (Dense `(in, out)`, Conv2D `(kh, kw, in, out)`).
        density: fraction of all weights kept, in (0, 1].
        scheme: `"uniform"` (every layer the same), `"erk"` (Erdos-Renyi-
            Kernel: proportional to `sum(shape) / prod(shape)`), `"balanced"`
            (the same number of weights in every layer), or `"pyramidal"`
            (`r ** l` for layer `l = 1..L`, `r` solved for the target).
        dense_layers: layers kept at density 1: `"first"`, `"last"` and/or
            integer indices into `shapes`.

    Returns:
        A list of floats in (0, 1], one per shape, whose parameter-weighted
        mean is `density`.

    Examples:
        >>> layer_densities([(3, 3, 3, 16), (3, 3, 16, 16), (64, 10)], 0.5, "erk")
        [0.96..., 0.27..., 1.0]
    """
    density = validate_density(density)
    scheme = validate_scheme(scheme)
    sizes = _sizes(shapes)
    dense = resolve_dense_layers(dense_layers, len(sizes))
    free = [i for i in range(len(sizes)) if i not in dense]
    budget = density * sizes.sum() - sizes[list(dense)].sum()
    if not free:
        if budget < -1e-9 * sizes.sum():
            raise ValueError(_infeasible_message(density, sizes, dense))
        return [1.0] * len(sizes)
    if budget <= 0:
        raise ValueError(_infeasible_message(density, sizes, dense))

    free_shapes = [tuple(int(d) for d in shapes[i]) for i in free]
    free_densities = np.asarray(SCHEMES[scheme](free_shapes, sizes[free], budget), float)
    _check_scheme_result(scheme, free_densities, sizes[free], budget)
    densities = np.ones(len(sizes))
    densities[free] = free_densities
    return [float(d) for d in densities]


def _sizes(shapes):
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise ValueError("`shapes` must be a non-empty list of kernel shapes.")
    sizes = []
    for shape in shapes:
        try:
            dims = [int(d) for d in shape]
        except (TypeError, ValueError):
            raise ValueError(f"Invalid kernel shape {shape!r} in `shapes`.") from None
        if not dims or min(dims) < 1:
            raise ValueError(f"Invalid kernel shape {shape!r} in `shapes`.")
        sizes.append(math.prod(dims))
    return np.array(sizes, dtype=np.float64)


def _infeasible_message(density, sizes, dense):
    kept = sizes[list(dense)].sum() / sizes.sum()
    return (
        f"`density`={density} is infeasible: the layers kept dense by "
        f"`dense_layers` already hold {kept:.4f} of all weights. Raise "
        "`density` or keep fewer layers dense."
    )


def _capped_proportional(weights, sizes, budget):
    """Densities `eps * weights`, capped at 1, with `sum(d * sizes) == budget`.

    Layers that would exceed 1 are made dense and `eps` is re-solved for the
    rest (the iterative method of RigL's ERK), so the target is met exactly.
    """
    capped = np.zeros(len(sizes), dtype=bool)
    while True:
        remaining = budget - sizes[capped].sum()
        eps = remaining / (weights[~capped] * sizes[~capped]).sum()
        over = ~capped & (eps * weights > 1.0)
        if not over.any():
            break
        capped |= over
    return np.where(capped, 1.0, eps * weights)


def _check_scheme_result(scheme, densities, sizes, budget):
    if densities.shape != sizes.shape or not np.all((densities > 0) & (densities <= 1 + 1e-9)):
        raise ValueError(
            f"Scheme {scheme!r} returned densities outside (0, 1] or of the wrong length: {densities.tolist()}."
        )
    if not math.isclose(float(densities @ sizes), budget, rel_tol=1e-6):
        raise ValueError(
            f"Scheme {scheme!r} keeps {densities @ sizes:.1f} weights instead "
            f"of the {budget:.1f} the target density allows."
        )


def _pyramidal(shapes, sizes, budget):
    """Densities `r ** l`, `l = 1..L`, with `r` solved by bisection."""
    exponents = np.arange(1, len(sizes) + 1)

    def kept(r):
        return (sizes * r**exponents).sum()

    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if kept(mid) < budget:
            lo = mid
        else:
            hi = mid
    return ((lo + hi) / 2) ** exponents


SCHEMES = Registry(
    "scheme",
    {
        "uniform": proportional_scheme(lambda shape: 1.0),
        "erk": proportional_scheme(lambda shape: sum(shape) / math.prod(shape)),
        "balanced": proportional_scheme(lambda shape: 1.0 / math.prod(shape)),
        "pyramidal": _pyramidal,
    },
    reserved=("dense",),  # a model without masks, not a scheme
)
"""Scheme name -> `densities_fn(shapes, sizes, budget)`; `register_scheme` adds one."""
