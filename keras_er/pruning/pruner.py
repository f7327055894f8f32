"""`prune`: set every masked layer's mask to the best-scoring active weights of a method."""

import keras
import numpy as np

from keras_er.backend_helpers import sync_training_state
from keras_er.masks.schemes import validate_density
from keras_er.masks.schemes import validate_scheme
from keras_er.model_masks import masked_layers, require_masked_layers
from keras_er.pruning import select
from keras_er.pruning import scores as scores_lib


def prune(model, method, density, scheme=None, data=None, seed=0, iterations=100, *, loss=None):
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
            the model's current density.
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

    Ties are broken deterministically: within a layer the lower flat index
    wins, across layers the earlier layer. Non-finite scores (a NaN in the
    SNIP batch, a NaN kernel under `magnitude`) are refused with a ValueError
    naming the layer and the method, and no mask changes. Inside `model.fit` on JAX the training state is synced first.

    Example:

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
    """
    score_fn = scores_lib.get_method(method)
    density = validate_density(density)
    scheme = None if scheme is None else validate_scheme(scheme)
    seed = scores_lib.validate_seed(seed)
    iterations = scores_lib.validate_iterations(iterations)
    scores_lib.check_method_data(method, data, "prune")
    layers = prunable_layers(model)
    sync_training_state(model)
    active = [np.asarray(keras.ops.convert_to_numpy(layer.mask)).astype(bool) for layer in layers]
    kept, size = sum(int(a.sum()) for a in active), sum(a.size for a in active)
    if select.global_count([size], density) > kept:
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
    )
    scores = _check_scores(method, context.layers, score_fn(context))
    masks = context.select(scores, density)  # refuses NaN/inf scores, naming the layer, before any mask changes
    optimizer = getattr(model, "optimizer", None)  # its slots are zeroed outside the new masks
    for layer, mask in zip(layers, masks):
        layer.assign_mask(mask, optimizer=optimizer)
    return [float(mask.sum() / mask.size) for mask in masks]


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
