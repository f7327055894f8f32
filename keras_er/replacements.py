"""Which Keras layers have a masked version, and which layers of a model `sparsify` replaces.

`REPLACEMENTS` maps a Keras layer class to its masked class (exact types: a
user's subclass of Dense may change `call`). `register_replacement` adds one.
"""

import fnmatch
import warnings

import keras

from keras_er.layers import Conv2D
from keras_er.layers import MaskedConv1D
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedConv2DTranspose
from keras_er.layers import MaskedConv3D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D
from keras_er.layers import MaskedEinsumDense
from keras_er.layers import MaskedLayer
from keras_er.layers import MaskedSeparableConv2D
from keras_er.layers import in_place
from keras_er.masks.model import all_layers
from keras_er.masks.model import unmasked_kernels
from keras_er.registry import Registry


def _keras_layer_class(kind, keras_class):
    if not (isinstance(keras_class, type) and issubclass(keras_class, keras.layers.Layer)):
        raise TypeError(f"`keras_class` must be a keras.layers.Layer subclass; got {keras_class!r}.")


def _masked_layer_class(kind, masked_class):
    if not (isinstance(masked_class, type) and issubclass(masked_class, MaskedLayer)):
        raise TypeError(f"`masked_class` must be a MaskedLayer subclass; got {masked_class!r}.")


REPLACEMENTS = Registry(
    "layer replacement",
    {
        keras.layers.Dense: MaskedDense,
        keras.layers.Conv1D: MaskedConv1D,
        keras.layers.Conv2D: MaskedConv2D,
        Conv2D: MaskedConv2D,  # keras_er's Conv2D (the architectures' faster twin of Keras')
        keras.layers.Conv3D: MaskedConv3D,
        keras.layers.Conv2DTranspose: MaskedConv2DTranspose,
        keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D,
        keras.layers.SeparableConv2D: MaskedSeparableConv2D,
        keras.layers.EinsumDense: MaskedEinsumDense,
    },
    check_key=_keras_layer_class,
    check_entry=_masked_layer_class,
)
"""Keras layer class -> the keras_er masked layer `sparsify` puts in its place."""


def register_replacement(keras_class, masked_class):
    """Let `sparsify` replace layers of exactly `keras_class` with `masked_class`.

    `masked_class` must be a `MaskedLayer` taking `keras_class`'s config
    (plus `density`, `seed`, `popup`, `popup_density`). A class that has a
    replacement already is refused (`unregister_replacement` first).
    """
    REPLACEMENTS.register(keras_class, masked_class)


def unregister_replacement(keras_class):
    """Remove a replacement added with `register_replacement` (built-in ones stay)."""
    REPLACEMENTS.unregister(keras_class)


def matches(layer, item):
    """Whether `include`/`exclude` item `item` names `layer`: a layer class (isinstance), or a string that is
    the layer's name, its path (`model/block/dense`) or a glob pattern on either (`*attention*`)."""
    if isinstance(item, type):
        return isinstance(layer, item)
    path = getattr(layer, "path", layer.name)
    return item in (layer.name, path) or fnmatch.fnmatchcase(layer.name, item) or fnmatch.fnmatchcase(path, item)


def check_selectors(candidates, include, exclude):
    """A ValueError/TypeError for an `include`/`exclude` item that is not a str or class, or names no candidate."""
    for arg, items in (("include", include), ("exclude", exclude)):
        if items is None:
            continue
        if isinstance(items, (str, type)):
            raise TypeError(f"`{arg}` must be a list of names, paths, patterns or layer classes; got {items!r}.")
        for item in items:
            if not isinstance(item, (str, type)):
                raise TypeError(f"`{arg}` items must be str (name, path, pattern) or a layer class; got {item!r}.")
            if not any(matches(layer, item) for layer in candidates):
                names = [getattr(layer, "path", layer.name) for layer in candidates]
                raise ValueError(
                    f"`{arg}` item {item!r} names no layer sparsify can mask ({replaceable_names()}, and "
                    f"Keras' Embedding/EinsumDense/Dense/Conv inside other layers); the model's are: {names}."
                )


def chosen(layer, include, exclude):
    if include is not None and not any(matches(layer, item) for item in include):
        return False
    return not any(matches(layer, item) for item in exclude or ())


def replaceable_names():
    return ", ".join(dict.fromkeys(layer_class.__name__ for layer_class in REPLACEMENTS))


def maskable(layer):
    """Whether `sparsify` replaces `layer` by a keras_er masked layer (in a model Keras can clone)."""
    if type(layer) not in REPLACEMENTS:
        return False
    return getattr(layer, "padding", None) != "causal"  # no masked causal conv yet


def warn_about_dense_kernels(model, kept_dense=None):
    """One warning naming every trainable matrix (>= 2-D weight) of `model` that stays dense.

    `kept_dense` (`{id(layer): reason}`) adds masked layers whose masks stay all ones (N:M
    cannot group them), each with its reason.
    """
    kept_dense = kept_dense or {}
    left = []
    for layer in all_layers(model):
        name = f"{getattr(layer, 'path', layer.name)} ({in_place.keras_class(layer).__name__}"  # the user's class
        if id(layer) in kept_dense:
            left.append(f"{name}: {layer.kernel_variable.name}, {kept_dense[id(layer)]})")
        if weights := unmasked_kernels(layer):
            left.append(f"{name}: {', '.join(w.name for w in weights)})")
    if left:
        warnings.warn(
            f"sparsify leaves these weights dense: {'; '.join(left)}. masks.summary counts them as kept; "
            "include/exclude choose what is masked.",
            stacklevel=3,
        )
