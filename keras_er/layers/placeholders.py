"""Building a model whose every weight is assigned next, without running its initializers.

`keras_er.zoo.load` builds the architecture, masks it and then assigns the
published values to every weight. Running the layers' initializers first only
costs time: on JAX each random draw compiles with XLA once per weight shape
(a ResNet20 load made about 60 such compiles). Inside `placeholder_weights()`
the layers that inherit `PlaceholderWeights` - keras_er's Conv2D and
BatchNormalization and every masked layer - create each weight from numpy
zeros, which no backend compiles; Keras' own layers still run their
initializers. Nothing else changes: configs keep the real initializers, and a
model built outside the context draws its weights as before.

Examples:
    >>> from keras_er.layers import Conv2D
    >>> with placeholder_weights():
    ...     layer = Conv2D(4, 3)
    ...     layer.build((None, 8, 8, 3))
    >>> float(keras.ops.max(keras.ops.abs(layer.kernel)))
    0.0
    >>> layer.get_config()["kernel_initializer"]["class_name"]
    'GlorotUniform'
"""

import contextlib
import contextvars

import keras
import numpy as np

_ACTIVE = contextvars.ContextVar("keras_er_placeholder_weights", default=False)


@contextlib.contextmanager
def placeholder_weights():
    """Inside, `PlaceholderWeights` layers create their weights as zeros, skipping their initializers.

    Only for a model whose weights are all assigned before it is used (as
    `keras_er.zoo.load` does): the zeros are not a usable initialisation.
    """
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active():
    """Whether the current code runs inside `placeholder_weights()`."""
    return _ACTIVE.get()


def zeros(shape, dtype=None):
    """Zeros of `shape` as a numpy array (a backend tensor for dtypes numpy lacks, such as bfloat16)."""
    dtype = keras.backend.standardize_dtype(dtype)
    try:
        return np.zeros(shape, dtype)
    except TypeError:
        return keras.ops.zeros(shape, dtype)


class PlaceholderWeights:
    """Mixin for a Keras layer: inside `placeholder_weights()`, `add_weight` uses `zeros` as the initializer.

    Put it before the Keras class in the bases (`class Conv2D(PlaceholderWeights, keras.layers.Conv2D)`).
    """

    def add_weight(self, *args, **kwargs):
        if active():
            if len(args) > 1:  # Keras' legacy positional (shape, initializer, dtype)
                args = (args[0], zeros, *args[2:])
            else:
                kwargs["initializer"] = zeros
        return super().add_weight(*args, **kwargs)
