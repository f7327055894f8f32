"""Masks on whole models: find masked layers, (re)draw their masks, summarise."""

import keras
import numpy as np

from keras_er.layers.in_place import InPlaceMasked
from keras_er.layers.in_place import is_matrix
from keras_er.layers.in_place import own_weights
from keras_er.layers.in_place import walk
from keras_er.layers.masked_layer import MaskedLayer
from keras_er.masks.sampling import sample_masks
from keras_er.masks.schemes import layer_densities
from keras_er.masks.schemes import resolve_dense_layers


def leaf_layers(model):
    """The layers of `model`, nested models flattened, in layer order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def all_layers(model):
    """Every layer inside `model`: nested models and layers inside layers (MultiHeadAttention's
    projections, a keras-hub block's), depth first in network order, each once."""
    return list(walk(model))


def is_masked(layer):
    """A keras_er masked layer, or a Keras layer masked in place by `sparsify`."""
    return isinstance(layer, (MaskedLayer, InPlaceMasked))


def masked_layers(model):
    """Every masked layer of `model` (see `is_masked`), nested ones included, in network order."""
    return [layer for layer in all_layers(model) if is_masked(layer)]


def assign(
    model,
    density=0.1,
    scheme="erk",
    seed=0,
    method="exact",
    dense_layers=(),
    repair_flow=False,
):
    """Draw new ER masks for every masked layer of a built `model`.

    Masked kernel entries are set to zero, and so are the compiled optimizer's
    slots for them (momentum, moments, EMA), so training on keeps them zero.

    Per-layer densities come from `layer_densities(shapes, density, scheme)`
    over all masked layers in network order; masks from
    `sample_masks(..., seed, method)`. Everything is validated and sampled
    before any layer changes, so a bad argument leaves the model untouched.

    Args:
        model: a built Keras model containing `keras_er` masked layers.
        density, scheme, seed, method, repair_flow: as in `layer_densities`
            and `sample_masks`.
        dense_layers: layers kept dense: `"first"`, `"last"`, indices into
            the masked layers, or layer names.

    Returns:
        The per-layer densities used, one per masked layer.

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16),
        ...                           MaskedDense(4)])
        >>> assign(model, density=0.5, scheme="erk", seed=0)
        [0.4..., 0.6...]
    """
    layers = require_masked_layers(model)
    shapes = [tuple(layer.kernel_variable.shape) for layer in layers]
    dense = dense_layer_indices(dense_layers, layers)
    densities = layer_densities(shapes, density, scheme, dense_layers=dense)
    masks = sample_masks(shapes, densities, seed, method, repair_flow)
    optimizer = getattr(model, "optimizer", None)  # its slots are zeroed outside the masks
    for layer, mask in zip(layers, masks):
        layer.assign_mask(mask, optimizer=optimizer)
        layer.n_m = None
    return densities


def summary(model, print_fn=print):
    """Per-layer table of kernel weights kept and the global density.

    Densities count the weights the forward pass uses (in popup mode: the
    mask intersected with the top-k of the scores). Trainable matrices
    (>= 2-D weights) left dense (excluded, or of a layer keras_er cannot mask,
    like a keras-hub position embedding or the depthwise kernel of a
    MaskedSeparableConv2D) are listed too, with every weight kept, and count
    in the global density.

    Returns:
        A `MaskSummary`: a dict with `layers` (a list of dicts: name, shape,
        size, nonzeros, density, masked), `size`, `nonzeros` and
        `global_density`, whose repr is one line, so a notebook cell or a REPL
        that ends with `summary(model)` shows the table once.
    """
    rows = []
    masked = set(id(layer) for layer in require_masked_layers(model))
    for layer in all_layers(model):
        name = layer.path if hasattr(layer, "path") else layer.name
        kept = [(layer.active_mask(), True)] if id(layer) in masked else []
        kept += [(np.ones(tuple(kernel.shape), bool), False) for kernel in unmasked_kernels(layer)]
        for active, is_masked in kept:
            rows.append(
                {
                    "name": name,
                    "shape": tuple(active.shape),
                    "size": int(active.size),
                    "nonzeros": int(np.count_nonzero(active)),
                    "density": float(np.count_nonzero(active) / active.size),
                    "masked": is_masked,
                    "n_m": getattr(layer, "n_m", None) if is_masked else None,
                }
            )
    size = sum(row["size"] for row in rows)
    nonzeros = sum(row["nonzeros"] for row in rows)
    result = MaskSummary(layers=rows, size=size, nonzeros=nonzeros, global_density=nonzeros / size)
    if print_fn is not None:
        print_fn(_format_table(result))
    return result


class MaskSummary(dict):
    """What `summary` returns: a dict that shows itself in one line (`str()` gives the table)."""

    def __repr__(self):
        return (
            f"MaskSummary(global_density={self['global_density']:.4f}, nonzeros={self['nonzeros']}, "
            f"size={self['size']}, layers={len(self['layers'])})"
        )

    def __str__(self):
        return _format_table(self)


def unmasked_kernels(layer):
    """The trainable matrices (>= 2-D weights) `layer` itself holds that carry no mask."""
    if is_masked(layer):
        return layer.dense_kernels()
    return [w for w in own_weights(layer) if is_matrix(w)]


def require_masked_layers(model):
    """The masked layers of a built `model`, or a clear error (not a model, none masked, not built)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    layers = masked_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no keras_er masked layers; build it with "
            "keras_er.layers or convert it with keras_er.sparsify."
        )
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(
            f"Model '{model.name}' is not built (layers {unbuilt}); give it an Input or call it on data first."
        )
    return layers


def dense_layer_indices(dense_layers, layers):
    if isinstance(dense_layers, (str, int)):
        dense_layers = (dense_layers,)
    names = [layer.name for layer in layers]
    resolved = []
    for item in dense_layers:
        if isinstance(item, str) and item not in ("first", "last"):
            if item not in names:
                raise ValueError(
                    f"`dense_layers` names layer {item!r}, which is not a masked "
                    f"layer of the model; masked layers are: {names}."
                )
            item = names.index(item)
        resolved.append(item)
    return resolve_dense_layers(resolved, len(layers))


def _format_table(result):
    names = [row["name"] + ("" if row["masked"] else " (not masked)") for row in result["layers"]]
    width = max([len(name) for name in names] + [5])
    lines = [f"{'layer':<{width}}  {'shape':<20} {'weights':>10} {'kept':>10} {'density':>8}"]
    for name, row in zip(names, result["layers"]):
        lines.append(
            f"{name:<{width}}  {str(row['shape']):<20} {row['size']:>10} {row['nonzeros']:>10} {row['density']:>8.4f}"
        )
    lines.append(
        f"{'total':<{width}}  {'':<20} {result['size']:>10} {result['nonzeros']:>10} {result['global_density']:>8.4f}"
    )
    return "\n".join(lines)
