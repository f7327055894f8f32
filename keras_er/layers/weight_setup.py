"""Helpers for a masked layer's weights: initializers from arrays, fresh seeds, optimizer slots."""

import keras
import numpy as np
from keras import ops


def fresh_seed():
    return int(np.random.SeedSequence().entropy % (2**31))


def array_initializer(array):
    def initializer(shape, dtype=None):
        return ops.cast(ops.convert_to_tensor(array), dtype or "float32")

    return initializer


def optional_initializer(identifier):
    """`keras.initializers.get`, keeping None (meaning: the layer's default)."""
    return None if identifier is None else keras.initializers.get(identifier)


def zero_optimizer_slots(optimizer, variable, keep):
    """Multiply the built `optimizer`'s slots for `variable` by the 0/1 array `keep`.

    Momentum, Adam moments and the EMA average then hold nothing outside
    `keep`, so they cannot carry a masked weight off zero (or give a newly
    grown weight a head start). A no-op for an optimizer that is not built.
    """
    if optimizer is None or not getattr(optimizer, "built", False):
        return
    # Keras names a slot `<variable path with / as _>_<slot name>`; a suffix that
    # names a weight again belongs to another layer (one called `<name>_kernel`).
    prefix = variable.path.replace("/", "_") + "_"
    for slot in optimizer.variables:
        suffix = slot.name[len(prefix) :]
        if (
            slot.name.startswith(prefix)
            and tuple(slot.shape) == tuple(variable.shape)
            and not any(word in suffix for word in ("kernel", "scores", "bias"))
        ):
            slot.assign(slot * ops.cast(keep, slot.dtype))


def check_mask(layer_name, mask, expected_shape):
    """`mask` as a numpy array, or a ValueError naming the layer: it must have `expected_shape` and be 0/1."""
    mask = np.asarray(keras.ops.convert_to_numpy(mask))
    if mask.shape != tuple(expected_shape):
        raise ValueError(
            f"`mask` for layer '{layer_name}' must have the kernel's shape {tuple(expected_shape)}; got {mask.shape}."
        )
    if not np.isin(mask, (0, 1)).all():
        raise ValueError(
            f"`mask` for layer '{layer_name}' must be binary (0/1 or bool); got values {np.unique(mask)[:5].tolist()}."
        )
    return mask
