"""`prune`: set every masked layer's mask to the best-scoring active weights of a method."""

import math
import warnings

import keras
import numpy as np

from keras_er.backend_helpers import sync_training_state
from keras_er.masks.model import masked_layers
from keras_er.masks.model import require_masked_layers
from keras_er.masks.n_m import group_counts
from keras_er.masks.n_m import validate_n_m
from keras_er.masks.n_m_model import model_n_m
from keras_er.masks.n_m_model import n_m_dense_reasons
from keras_er.masks.n_m_model import reduction_axis
from keras_er.masks.schemes import validate_density
from keras_er.masks.schemes import validate_scheme
from keras_er.pruning import scores as scores_lib
from keras_er.pruning import select


def prune(model, method, density=None, scheme=None, data=None, seed=0, iterations=100, *, loss=None, n_m=None):
    """Prune every masked layer of `model` in place to `density`; returns the per-layer densities.

    Scores come from the registered `method` (`keras_er.pruning.METHODS`):
    `magnitude` (`|w|`), `random` (seeded: an Erdos-Renyi mask), `snip`
    (`|dL/dw * w|` on one batch; Lee et al., ICLR 2019) or `synflow`
    (iterative, data-free; Tanaka et al., NeurIPS 2020). Only weights that
    are active now can be kept, so pruning a sparse model makes it sparser
    (iterative magnitude pruning relies on it). Masks are set with
    `assign_mask`, which zeroes the pruned weights and the compiled
    optimizer's slots for them.

    Args:
        model: a built Keras model with `keras_er` masked layers (not popup):
            a dense start is a masked model at density 1, e.g.
            `keras_er.sparsify(model, density=1.0)`.
        method: a registered method name.
        density: fraction of all masked-layer weights kept, in (0, 1], at most
            the model's current density. With `n_m` it is `N / M`: leave it
            None (or pass `N / M`).
        scheme: None ranks all masked layers together (each layer keeps at
            least one weight) and keeps exactly `round(density * n)` weights;
            a scheme name (`"erk"`, `"uniform"`, ...) keeps, in layer `i`, its
            best `max(1, round(d_i * n_i))` weights for the densities `d_i` of
            `keras_er.masks.layer_densities(shapes, density, scheme)` (capped
            at the weights the layer still has).
        data: for data-driven methods (`snip`): an `(x, y)` tuple of numpy
            arrays, or a `keras.utils.PyDataset` (`keras_er.data.ImageBatches`)
            whose first batch is used.
        seed: seed of the `random` method.
        iterations: SynFlow's pruning iterations (100 in the paper).
        loss: the loss of data-driven methods; default sparse categorical
            cross-entropy on logits.
        n_m: None, or `(N, M)` (ints, `1 <= N < M`) for N:M masks. Not with a `scheme`.

    With `n_m=(N, M)` the masks become N:M structured: in every group of `M`
    consecutive weights along a layer's reduction axis
    (`keras_er.masks.reduction_axis`), the `N` best-scored active weights are
    kept (ties to the lower index in the group), with any one-shot method
    (`magnitude`, `random`, `snip`, a registered one; not the iterative
    `synflow`). Every group must have at least `N` active weights: a mask
    that is N:M already stays as it is. Layers N:M cannot group (a
    DepthwiseConv2D, an Embedding, a reduction axis that is not a multiple of
    `M`) keep their masks, and one warning names them. The layers record the
    pattern (`layer.n_m`). Without `n_m`, weights are ranked regardless of
    groups: on a model recorded as N:M (by `sparsify(n_m=)`, `prune(n_m=)` or
    `keras_er.masks.record_n_m`) the result is no longer N:M, and a warning
    says so.

    Ties are broken deterministically: within a layer the lower flat index
    wins, across layers the earlier layer. Non-finite scores (a NaN in the
    SNIP batch, a NaN kernel under `magnitude`) are refused with a ValueError
    naming the layer and the method, and no mask changes. Inside `model.fit` on JAX the training state is synced first.

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> from keras_er.pruning import prune
        >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16, seed=0), MaskedDense(4, seed=1)])
        >>> prune(model, "magnitude", 0.5)  # one global ranking: per-layer densities differ
        [...]
        >>> keras_er.masks.summary(model, print_fn=None)["global_density"]
        0.5
        >>> x, y = np.ones((4, 8), "float32"), np.array([0, 1, 2, 3])
        >>> prune(model, "snip", 0.25, scheme="erk", data=(x, y))  # per-layer ERK budgets
        [0.203125, 0.34375]
        >>> densities = prune(model, "synflow", 0.1, iterations=10)
        >>> keras_er.masks.summary(model, print_fn=None)["nonzeros"]  # round(0.1 * 192)
        19

        2:4 by magnitude, from dense:

        >>> model = keras_er.sparsify(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]), density=1.0)
        >>> prune(model, "magnitude", n_m=(2, 4))
        [0.5]
        >>> keras_er.masks.is_n_m(model.layers[0].active_mask(), (2, 4), axis=0), model.layers[0].n_m
        (True, (2, 4))
    """
    score_fn = scores_lib.get_method(method)
    density, n_m = _resolve_pattern(method, density, scheme, n_m)
    scheme = None if scheme is None else validate_scheme(scheme)
    seed = scores_lib.validate_seed(seed)
    iterations = scores_lib.validate_iterations(iterations)
    scores_lib.check_method_data(method, data, "prune")
    layers = prunable_layers(model)
    sync_training_state(model)
    active = [np.asarray(keras.ops.convert_to_numpy(layer.mask)).astype(bool) for layer in layers]
    kept, size = sum(int(a.sum()) for a in active), sum(a.size for a in active)
    axes = None
    if n_m is not None:
        axes = _n_m_axes(layers, active, n_m)
    elif select.global_count([size], density) > kept:
        raise ValueError(
            f"`density`={density} is above the model's current density {kept / size:.6g} "
            f"({kept} of {size} masked weights): pruning only removes weights."
        )
    context = scores_lib.PruningContext(
        model=model,
        layers=layers,
        active=active,
        density=density,
        scheme=scheme,
        data=data,
        seed=seed,
        iterations=iterations,
        loss=loss,
        method=method.lower(),
        n_m=n_m,
        axes=axes,
    )
    scores = _check_scores(method, context.layers, score_fn(context))
    masks = context.select(scores, density)  # refuses NaN/inf scores, naming the layer, before any mask changes
    if n_m is None:
        _warn_if_pattern_lost(layers)
    optimizer = getattr(model, "optimizer", None)  # its slots are zeroed outside the new masks
    for i, (layer, mask) in enumerate(zip(layers, masks)):
        layer.assign_mask(mask, optimizer=optimizer)
        layer.n_m = None if axes is None or axes[i] is None else n_m
    return [float(mask.sum() / mask.size) for mask in masks]


def _resolve_pattern(method, density, scheme, n_m):
    """`(density, n_m)` checked: `density` is required without `n_m` and `N / M` (or None) with it."""
    if n_m is None:
        if density is None:
            raise TypeError("prune() needs `density` (the fraction of weights kept), or `n_m=(N, M)`.")
        return validate_density(density), None
    n, m = validate_n_m(n_m)
    if density is not None and not math.isclose(validate_density(density), n / m, rel_tol=1e-9):
        raise ValueError(
            f"`density`={density} conflicts with `n_m`=({n}, {m}), which keeps {n / m:g} of every group: "
            "leave `density` None."
        )
    if scheme is not None:
        raise ValueError(f"`scheme`={scheme!r} does not apply with `n_m`: every group keeps {n} of {m} weights.")
    if isinstance(method, str) and method.lower() == "synflow":
        raise ValueError(
            "`synflow` prunes iteratively through densities above N/M, which are not N:M; with `n_m` use a "
            "one-shot method (magnitude, random, snip)."
        )
    return n / m, (n, m)


def _n_m_axes(layers, active, n_m):
    """Each layer's grouping axis (None: left as it is, named in one warning); refuses groups short of N."""
    n, m = n_m
    reasons = n_m_dense_reasons(layers, n_m)
    axes = [None if id(layer) in reasons else reduction_axis(layer) for layer in layers]
    for layer, mask, axis in zip(layers, active, axes):
        if axis is None:
            continue
        counts = group_counts(mask, m, axis)
        short = int(np.count_nonzero(counts < n))
        if short:
            raise ValueError(
                f"Layer '{layer.name}' has {short} of {counts.size} groups of {m} (along axis {axis}) with fewer "
                f"than {n} active weights: it cannot become {n}:{m}, since pruning only removes weights."
            )
    if reasons:
        names = "; ".join(f"{layer.name} ({reasons[id(layer)]})" for layer in layers if id(layer) in reasons)
        warnings.warn(f"prune(n_m=({n}, {m})) leaves these layers' masks as they are: {names}.", stacklevel=3)
    return axes


def _warn_if_pattern_lost(layers):
    recorded = [layer for layer in layers if getattr(layer, "n_m", None) is not None]
    if recorded:
        n, m = recorded[0].n_m
        warnings.warn(
            f"prune without `n_m` ranks weights regardless of groups, so the {n}:{m} masks of "
            f"{', '.join(layer.name for layer in recorded)} are no longer {n}:{m}; pass n_m=({n}, {m}) to keep "
            "the pattern.",
            stacklevel=3,
        )


def prunable_layers(model):
    """The masked layers of a built `model`, or a clear error (no masked layers, not built, popup)."""
    layers = require_masked_layers(model)
    popup = [layer.name for layer in layers if layer.popup]
    if popup:
        raise ValueError(
            f"Cannot prune popup layers ({', '.join(popup)}): their kernels are frozen and their masks are "
            "learned by scores; prune a model built with popup=False."
        )
    return layers


def refuse_n_m(model, caller):
    """A ValueError if `model` is recorded as N:M: `caller` (GradualPruning, imp) prunes regardless of groups."""
    pattern = model_n_m(model)
    if pattern is not None:
        n, m = pattern
        raise ValueError(
            f"{caller} prunes weights regardless of groups and would break the {n}:{m} masks of model "
            f"'{model.name}'. An N:M model is pruned once, with keras_er.pruning.prune(model, method, n_m=({n}, {m})), "
            f"and trained as it is (SET and RigL keep it {n}:{m}); for unstructured pruning, set each masked "
            "layer's `n_m` to None first."
        )


def model_density(model):
    """Fraction of the masked layers' weights that are active (their masks' mean, weighted by size)."""
    layers = masked_layers(model)
    masks = [np.asarray(keras.ops.convert_to_numpy(layer.mask)) for layer in layers]
    return float(sum(np.count_nonzero(m) for m in masks) / sum(m.size for m in masks))


def _check_scores(method, layers, scores):
    scores = list(scores)
    if len(scores) != len(layers):
        raise ValueError(f"Pruning method {method!r} returned {len(scores)} score arrays for {len(layers)} layers.")
    checked = []
    for layer, score in zip(layers, scores):
        score = np.asarray(keras.ops.convert_to_numpy(score))
        if score.shape != tuple(layer.kernel_variable.shape):
            raise ValueError(
                f"Pruning method {method!r} returned scores of shape {score.shape} for layer '{layer.name}' "
                f"(kernel shape {tuple(layer.kernel_variable.shape)})."
            )
        checked.append(score)
    return checked
