"""N:M structured masks on a model: each layer's reduction axis, drawing N:M masks, recording the pattern.

The numpy side (groups, sampling, checks) is `keras_er.masks.n_m`.
"""

import keras

from keras_er.layers.masked_conv import MaskedConvBase
from keras_er.layers.masked_conv_transpose import MaskedConv2DTranspose
from keras_er.layers.masked_dense import MaskedDense
from keras_er.layers.masked_depthwise_conv import MaskedDepthwiseConv2D
from keras_er.masks import n_m as n_m_lib
from keras_er.masks.model import dense_layer_indices
from keras_er.masks.model import is_masked
from keras_er.masks.model import masked_layers
from keras_er.masks.model import require_masked_layers


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
    dense = set(dense_layer_indices(dense_layers, layers))
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
