"""Masks added in place to Keras' own layers, wherever they sit in a model.

A layer masked in place keeps everything it does: its class is swapped for a
generated subclass (`InPlaceMaskedDense`, ...) whose weight property (`kernel`,
or `embeddings` for `Embedding`) returns the stored weight times a 0/1 mask.
That property is the hook Keras' own LoRA and quantization use, so the layer's
`call` - and the `call` of whatever layer holds it (MultiHeadAttention, a
keras-hub transformer block, a user's layer) - reads the masked weight without
knowing. Masks are `uint8` (one byte per weight).

`.keras` files: Keras rebuilds a model from configs, and a layer made by
another layer's code comes back as a plain Keras layer. So `sparsify` makes
each object Keras rebuilds from a config and that holds masked layers (the
model masked in place, or a top-level layer of a Functional/Sequential
model) a `MaskHolder`: its config records which layers inside it are masked,
and loading masks them again before their weights - and saved masks - load
(`import keras_er.layers` registers it for `keras.saving.load_model`).

This is the one module that reads Keras private names: `_tracker` (a built
layer's state is locked; adding the mask unlocks it as `enable_lora` does),
`_kernel` / `_embeddings` (the stored weights behind the properties) and
`_flatten_layers` (the sublayers of a layer). tests/layers/test_in_place.py
fails when Keras changes any of them.
"""

import inspect

import keras
import numpy as np
from keras import ops

from keras_er.layers.weight_setup import check_mask
from keras_er.layers.weight_setup import zero_optimizer_slots

# (class, property the layer's call reads, stored variable behind it)
MASKABLE = (
    (keras.layers.Embedding, "embeddings", "_embeddings"),
    (keras.layers.EinsumDense, "kernel", "_kernel"),
    (keras.layers.Dense, "kernel", "_kernel"),
    (keras.layers.Conv1D, "kernel", "_kernel"),
    (keras.layers.Conv2D, "kernel", "_kernel"),
    (keras.layers.Conv3D, "kernel", "_kernel"),
)


class InPlaceMasked:
    """What every layer masked in place adds to its Keras class (the masked-layer API of keras_er).

    `kernel_variable` is the stored (trainable) weight, `mask` the uint8 0/1
    weight of its shape; the forward pass uses `kernel_variable * mask`, so
    masked entries get zero gradient and, once zeroed by `assign_mask`, stay
    zero. Popup scores need keras_er's own layers (`sparsify` refuses popup
    for layers it can only mask in place).
    """

    popup = False
    kernel_arg_prefix = "kernel"

    @property
    def kernel_variable(self):
        return getattr(self, self._stored_weight)

    @property
    def fan_in(self):
        shape = tuple(self.kernel_variable.shape)
        return 1 if self._masked_property == "embeddings" else int(np.prod(shape[:-1]))

    def effective_kernel(self):
        """The weight the forward pass uses: the stored one times the mask."""
        return _times_mask(self.kernel_variable, self.mask)

    def assign_mask(self, mask, optimizer=None):
        """Set the 0/1 mask, zero the masked weights and their optimizer slots (see `MaskedLayer.assign_mask`)."""
        mask = check_mask(self.name, mask, tuple(self.kernel_variable.shape))
        weight = self.kernel_variable
        self.mask.assign(mask.astype("uint8"))
        weight.assign(ops.convert_to_numpy(weight.value) * mask.astype(weight.dtype))
        zero_optimizer_slots(optimizer, weight, mask)

    def active_mask(self):
        return ops.convert_to_numpy(self.mask).astype(bool)

    def dense_kernels(self):
        """This layer's other trainable matrices (e.g. an untied output embedding): not masked."""
        stored = self.kernel_variable
        return [w for w in own_weights(self) if w is not stored and is_matrix(w)]

    def save_own_variables(self, store):
        super().save_own_variables(store)  # the Keras layer's own entries, then the mask after them
        store[str(len(list(store.keys())))] = self.mask

    def load_own_variables(self, store):
        super().load_own_variables(store)  # reads its entries by index and skips the last (the mask)
        self.mask.assign(np.asarray(store[str(len(list(store.keys())) - 1)], dtype="uint8"))


_TWINS = {}


def maskable_in_place(layer):
    """Whether `mask_in_place` can mask `layer` (a built, unquantized Dense/EinsumDense/Conv/Embedding)."""
    return (
        _spec(layer) is not None
        and not isinstance(layer, InPlaceMasked)
        and layer.built
        and getattr(layer, "quantization_mode", None) is None
        and getattr(layer, _spec(layer)[1], None) is not None
    )


def mask_in_place(layer):
    """Give the built Keras layer `layer` an all-ones mask on its kernel (or embeddings); return it.

    The layer object stays the same (its owner keeps calling it); its class
    becomes the masked twin of its class. Draw masks with `masks.assign`.
    """
    if not maskable_in_place(layer):
        raise TypeError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be masked in place: keras_er masks a built, "
            f"unquantized {', '.join(cls.__name__ for cls, _, _ in MASKABLE)} (or a subclass)."
        )
    layer.__class__ = _twin(type(layer))
    _add_mask(layer)
    return layer


def _add_mask(layer):
    layer._tracker.unlock()
    try:
        layer.mask = layer.add_weight(
            name="mask", shape=tuple(layer.kernel_variable.shape), initializer="ones", dtype="uint8", trainable=False
        )
    finally:
        layer._tracker.lock()


def hold_masks(model):
    """Make `model` save its in-place masks to `.keras`: each object Keras rebuilds from its config becomes a holder.

    `keras.saving.load_model` rebuilds a model from configs, and the layers
    made by a layer's own code (MultiHeadAttention's projections, a keras-hub
    block's, a user's layer's) come back as plain Keras layers without a mask
    variable. A holder - the model itself, or each top-level layer of a
    Functional/Sequential model that holds masked layers - records in its
    config which layers inside it are masked; when its weights load, before
    theirs, it masks them again, and their saved masks load into them.
    """
    if is_functional_or_sequential(model):
        for layer in model.layers:
            hold_masks(layer)
    elif isinstance(model, InPlaceMasked) or any(isinstance(layer, InPlaceMasked) for layer in walk(model)):
        if not isinstance(model, MaskHolder):
            model.__class__ = _holder(type(model))
    return model


class MaskHolder:
    """What a layer or model holding layers masked in place adds to its class: a `.keras` file that keeps the masks.

    Its config is its Keras class's config plus the positions (in `walk`
    order) of the masked layers inside it; `from_config` rebuilds the Keras
    class and `load_own_variables` - called before its sublayers load - masks
    those layers again. Saved under one registered name whatever the class.
    """

    def get_config(self):
        cls = keras_class(self)
        return {
            "layer": {
                "module": cls.__module__,
                "class_name": cls.__name__,
                "registered_name": keras.saving.get_registered_name(cls),
                "config": plain_config(self),
            },
            "masked_self": isinstance(self, InPlaceMasked),
            "masked": [
                [index, keras_class(layer).__name__]
                for index, layer in enumerate(walk(self))
                if isinstance(layer, InPlaceMasked)
            ],
        }

    @classmethod
    def from_config(cls, config):
        layer = keras.saving.deserialize_keras_object(config["layer"])
        base = _twin(type(layer)) if config["masked_self"] else type(layer)
        layer.__class__ = _holder(base)
        layer._masks_to_restore = [(int(index), name) for index, name in config["masked"]]
        return layer

    def load_own_variables(self, store):
        _restore_masks(self)
        super().load_own_variables(store)


def _restore_masks(holder):
    pending = holder.__dict__.pop("_masks_to_restore", None)
    if pending is None:
        return
    if isinstance(holder, InPlaceMasked) and getattr(holder, "mask", None) is None:
        _add_mask(holder)
    layers = list(walk(holder))
    for index, name in pending:
        layer = layers[index] if index < len(layers) else None
        if layer is None or keras_class(layer).__name__ != name:
            found = "nothing" if layer is None else keras_class(layer).__name__
            raise ValueError(
                f"The saved '{holder.name}' has a masked {name} at position {index} of its layers, but the rebuilt "
                f"model has {found} there: the file was saved from another architecture."
            )
        if not isinstance(layer, InPlaceMasked):
            mask_in_place(layer)


def keras_class(layer):
    """The class `layer` had before keras_er masked it in place or made it a holder."""
    return getattr(type(layer), "keras_class", type(layer))


def plain_config(layer):
    """`layer`'s config as its Keras class writes it (a holder's own config wraps it)."""
    if isinstance(layer, MaskHolder):
        return super(MaskHolder, layer).get_config()
    return layer.get_config()


def sublayers(layer):
    """The layers `layer` holds directly (a Functional model's in topological order)."""
    if is_functional_or_sequential(layer):
        return list(layer.layers)
    return list(layer._flatten_layers(include_self=False, recursive=False))


def walk(layer):
    """Every layer inside `layer`, depth first in call/assignment order, each once."""
    seen = set()

    def visit(parent):
        for child in sublayers(parent):
            if id(child) not in seen:
                seen.add(id(child))
                yield child
                yield from visit(child)

    yield from visit(layer)


def is_matrix(weight):
    """A trainable weight of two or more dimensions that is not a bias (an EinsumDense bias can be 2-D)."""
    return weight.trainable and len(weight.shape) >= 2 and "bias" not in weight.name


def own_weights(layer):
    """The weights `layer` creates itself, not those of the layers it holds."""
    nested = {id(w) for child in sublayers(layer) for w in child.weights}
    return [w for w in layer.weights if id(w) not in nested]


def is_functional_or_sequential(model):
    """A model Keras can clone: a Sequential, or exactly what `keras.Model(inputs, outputs)` makes."""
    # Functional is not public API; a model made by keras.Model(inputs, outputs) is an instance of exactly that class.
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"


def _spec(layer):
    for cls, prop, stored in MASKABLE:
        if isinstance(layer, cls):
            return prop, stored
    return None


def _twin(cls):
    if cls not in _TWINS:
        prop, stored = next((prop, stored) for keras_cls, prop, stored in MASKABLE if issubclass(cls, keras_cls))
        unmasked = inspect.getattr_static(cls, prop)

        def masked(self):
            weight = unmasked.fget(self)
            mask = getattr(self, "mask", None)
            return weight if mask is None else _times_mask(weight, mask)

        namespace = {prop: property(masked), "_masked_property": prop, "_stored_weight": stored, "keras_class": cls}
        namespace["__module__"] = __name__
        _TWINS[cls] = type(f"InPlaceMasked{cls.__name__}", (InPlaceMasked, cls), namespace)
    return _TWINS[cls]


_HOLDERS = {}
_HOLDER_NAME = "MasksInPlace"


def _holder(cls):
    if cls not in _HOLDERS:
        namespace = {"keras_class": getattr(cls, "keras_class", cls), "__module__": __name__}
        holder = type(f"MaskHolder{cls.__name__}", (MaskHolder, cls), namespace)
        keras.saving.register_keras_serializable(package="keras_er", name=_HOLDER_NAME)(holder)  # saved under it
        _HOLDERS[cls] = holder
        _register_holder_name()  # loading resolves the name to MaskHolder.from_config
    return _HOLDERS[cls]


def _register_holder_name():
    keras.saving.register_keras_serializable(package="keras_er", name=_HOLDER_NAME)(MaskHolder)


_register_holder_name()


def _times_mask(weight, mask):
    weight = ops.convert_to_tensor(weight)  # inside a mixed-precision call: the compute dtype
    return weight * ops.cast(mask, weight.dtype)
