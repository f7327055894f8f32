"""Masks on whole models: find masked layers, (re)draw their masks, summarise."""

import keras
import numpy as np

from keras_er.layers.in_place import InPlaceMasked
from keras_er.layers.in_place import is_matrix
from keras_er.layers.in_place import own_weights
from keras_er.layers.in_place import walk
from keras_er.layers.masked_conv import MaskedConvBase
from keras_er.layers.masked_conv_transpose import MaskedConv2DTranspose
from keras_er.layers.masked_dense import MaskedDense
from keras_er.layers.masked_depthwise_conv import MaskedDepthwiseConv2D
from keras_er.layers.masked_layer import MaskedLayer
from keras_er.masks import n_m as n_m_lib
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
    dense = _dense_layer_indices(dense_layers, layers)
    densities = layer_densities(shapes, density, scheme, dense_layers=dense)
    masks = sample_masks(shapes, densities, seed, method, repair_flow)
    optimizer = getattr(model, "optimizer", None)  # its slots are zeroed outside the masks
    for layer, mask in zip(layers, masks):
        layer.assign_mask(mask, optimizer=optimizer)
        layer.n_m = None
    return densities


def reduction_axis(layer):
    """The kernel axis N:M groups run along (the one the layer's matmul sums over), or None.

    - Dense `(in, out)`: 0; Conv1D/2D/3D `(*kernel_size, in, out)` and a
      SeparableConv2D's pointwise kernel: the input-channel axis (`ndim - 2`),
      as NVIDIA's ASP groups convolutions.
    - Conv2DTranspose `(kh, kw, filters, in)`: the input-channel axis (last).
    - EinsumDense: the last kernel axis the equation sums over (an axis of the
      input that is not in the output): 0 for MultiHeadAttention's query/key/value
      `(hidden, heads, head_dim)`, 1 (head_dim) for its output projection
      `(heads, head_dim, hidden)`.
    - DepthwiseConv2D (each channel is filtered alone: no sum over channels)
      and Embedding (a lookup sums over nothing): None; N:M leaves them dense.
    """
    if isinstance(layer, (MaskedDepthwiseConv2D, keras.layers.DepthwiseConv2D, keras.layers.Embedding)):
        return None
    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    if isinstance(layer, (MaskedConv2DTranspose, *transposed)):
        return _kernel_rank(layer) - 1
    equation = getattr(layer, "equation", None)
    if isinstance(equation, str):
        return _einsum_reduction_axis(equation)
    if isinstance(layer, (MaskedDense, keras.layers.Dense)):
        return 0
    if isinstance(layer, (MaskedConvBase, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        return _kernel_rank(layer) - 2
    return None


def _kernel_rank(layer):
    return len((layer.kernel_variable if is_masked(layer) else layer.kernel).shape)


def _einsum_reduction_axis(equation):
    inputs, rest = equation.split(",")
    kernel, output = rest.split("->")
    summed = [i for i, letter in enumerate(kernel) if letter in inputs and letter not in output]
    return summed[-1] if summed else None


def n_m_dense_reasons(layers, n_m):
    """`{id(layer): why}` for each masked layer N:M leaves dense (no reduction axis, or one not a multiple of M)."""
    n, m = n_m_lib.validate_n_m(n_m)
    reasons = {}
    for layer in layers:
        axis = reduction_axis(layer)
        shape = tuple(layer.kernel_variable.shape)
        if axis is None:
            reasons[id(layer)] = f"no reduction axis for {n}:{m}"
        elif not n_m_lib.fits(shape, m, axis):
            reasons[id(layer)] = f"reduction axis {axis} of {shape} is not a multiple of {m}"
    return reasons


def assign_n_m(model, n_m=(2, 4), seed=0, dense_layers=()):
    """Draw random N:M masks for every masked layer of a built `model`; returns the per-layer densities.

    In each group of `M` consecutive weights along a layer's `reduction_axis`,
    `N` are kept, uniformly at random from `seed` (layer `i` from the `i`-th
    child of `SeedSequence(seed)`: bit-identical on every backend). A layer
    with no reduction axis (DepthwiseConv2D, Embedding) or one whose length is
    not a multiple of `M`, and the layers of `dense_layers`, get an all-ones
    mask. Each layer records its pattern in `layer.n_m` (`(N, M)`, or None
    for a layer left dense), which pruning and DST read to keep it. As
    `assign`, masked weights and their optimizer slots are zeroed.

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16), MaskedDense(4)])
        >>> assign_n_m(model, (2, 4), seed=0)
        [0.5, 0.5]
        >>> keras_er.masks.is_n_m(model.layers[0].active_mask(), (2, 4), axis=0)
        True
    """
    n_m = n_m_lib.validate_n_m(n_m)
    layers = require_masked_layers(model)
    dense = set(_dense_layer_indices(dense_layers, layers))
    reasons = n_m_dense_reasons(layers, n_m)
    shapes = [tuple(layer.kernel_variable.shape) for layer in layers]
    axes = [None if i in dense or id(layer) in reasons else reduction_axis(layer) for i, layer in enumerate(layers)]
    masks = n_m_lib.sample_n_m_masks(shapes, axes, n_m, seed)
    optimizer = getattr(model, "optimizer", None)
    for layer, axis, mask in zip(layers, axes, masks):
        layer.assign_mask(mask, optimizer=optimizer)
        layer.n_m = None if axis is None else n_m
    return [float(mask.mean()) for mask in masks]


def record_n_m(model, n_m):
    """Mark the masks of `model` as N:M, after checking them; returns the layers marked.

    `sparsify(n_m=)`, `assign_n_m` and `pruning.prune(n_m=)` record the
    pattern themselves; call this for masks set by hand (`assign_mask`) or a
    model whose weights were loaded from a file, so that pruning and dynamic
    sparse training keep the pattern. Every masked layer whose mask is N:M
    along its `reduction_axis` is marked; a layer that is not N:M must be
    dense (all ones), else a ValueError names it.
    """
    n_m = n_m_lib.validate_n_m(n_m)
    layers = require_masked_layers(model)
    marked = set()
    for layer in layers:
        mask = layer.active_mask()
        axis = reduction_axis(layer)
        if axis is not None and n_m_lib.is_n_m(mask, n_m, axis):
            marked.add(id(layer))
        elif not mask.all():
            raise ValueError(
                f"Layer '{layer.name}' has a mask that is neither {n_m[0]}:{n_m[1]} along its reduction axis "
                f"({axis}) nor dense; draw N:M masks with keras_er.masks.assign_n_m."
            )
    for layer in layers:
        layer.n_m = n_m if id(layer) in marked else None
    return [layer for layer in layers if id(layer) in marked]


def model_n_m(model):
    """The N:M pattern recorded on the masked layers of `model` (`(N, M)`), or None when there is none.

    Raises a ValueError if layers record different patterns, or if a layer
    recorded as N:M no longer has an N:M mask (it was set by hand since).
    """
    patterns = {}
    for layer in masked_layers(model):
        pattern = getattr(layer, "n_m", None)
        if pattern is None:
            continue
        patterns.setdefault(tuple(pattern), []).append(layer.name)
        if not n_m_lib.is_n_m(layer.active_mask(), pattern, reduction_axis(layer)):
            raise ValueError(
                f"Layer '{layer.name}' is recorded as {pattern[0]}:{pattern[1]}, but its mask is not (set by hand "
                "since?): call keras_er.masks.record_n_m(model, n_m) again, or set `layer.n_m = None`."
            )
    if len(patterns) > 1:
        raise ValueError(f"Model '{model.name}' mixes N:M patterns: {patterns}.")
    return next(iter(patterns), None)


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


def _dense_layer_indices(dense_layers, layers):
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
