"""Which Keras layers have a masked version, and which layers of a model `sparsify` replaces.

`REPLACEMENTS` maps a Keras layer class to its masked class (exact types: a
user's subclass of Dense may change `call`). `register_replacement` adds one.
"""

import warnings

import keras

from keras_er.layers import (
    Conv2D,
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv2DTranspose,
    MaskedConv3D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedEinsumDense,
    MaskedLayer,
    MaskedSeparableConv2D,
)
from keras_er.model_masks import leaf_layers, unmasked_kernels

REPLACEMENTS = {
    keras.layers.Dense: MaskedDense,
    keras.layers.Conv1D: MaskedConv1D,
    keras.layers.Conv2D: MaskedConv2D,
    Conv2D: MaskedConv2D,  # keras_er's Conv2D (the architectures' faster twin of Keras')
    keras.layers.Conv3D: MaskedConv3D,
    keras.layers.Conv2DTranspose: MaskedConv2DTranspose,
    keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D,
    keras.layers.SeparableConv2D: MaskedSeparableConv2D,
    keras.layers.EinsumDense: MaskedEinsumDense,
}


def register_replacement(keras_class, masked_class):
    """Let `sparsify` replace layers of exactly `keras_class` with `masked_class`.

    `masked_class` must be a `MaskedLayer` taking `keras_class`'s config
    (plus `density`, `seed`, `popup`, `popup_density`).
    """
    if not (isinstance(masked_class, type) and issubclass(masked_class, MaskedLayer)):
        raise TypeError(f"`masked_class` must be a MaskedLayer subclass; got {masked_class!r}.")
    if not (isinstance(keras_class, type) and issubclass(keras_class, keras.layers.Layer)):
        raise TypeError(f"`keras_class` must be a keras.layers.Layer subclass; got {keras_class!r}.")
    REPLACEMENTS[keras_class] = masked_class


def select_layers(model, include, exclude):
    candidates = [layer.name for layer in leaf_layers(model) if maskable(layer)]
    for arg, names in (("include", include), ("exclude", exclude)):
        unknown = sorted(set(names or ()) - set(candidates))
        if unknown:
            raise ValueError(
                f"`{arg}` names {unknown}, which are not layers sparsify can mask "
                f"({replaceable_names()}); the model's are: {candidates}."
            )
    selected = [name for name in candidates if (include is None or name in include) and name not in (exclude or ())]
    warn_about_dense_kernels(model, selected)
    already_masked = any(isinstance(l, MaskedLayer) for l in leaf_layers(model))
    if not selected and not already_masked:
        raise ValueError(
            f"Model '{model.name}' has no layers to sparsify: `sparsify` replaces "
            f"the keras.layers {replaceable_names()} (after `include`/`exclude`; "
            "layers inside another layer, as in MultiHeadAttention, are not reached)."
        )
    return selected


def replaceable_names():
    return ", ".join(dict.fromkeys(layer_class.__name__ for layer_class in REPLACEMENTS))


def maskable(layer):
    if type(layer) not in REPLACEMENTS:
        return False
    return getattr(layer, "padding", None) != "causal"  # no masked causal conv yet


def warn_about_dense_kernels(model, selected):
    """Say which layers with kernels stay dense because keras_er cannot mask them yet."""
    left = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in leaf_layers(model)
        if layer.name not in selected
        and not isinstance(layer, MaskedLayer)
        and not maskable(layer)
        and unmasked_kernels(layer)
    ]
    if left:
        warnings.warn(
            "sparsify leaves these layers dense (keras_er has no masked version of them "
            f"yet): {', '.join(left)}. masks.summary counts their weights as kept.",
            stacklevel=3,
        )
