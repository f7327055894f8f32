"""The raw-pixel front of every model keras_er builds, and the guard that refuses normalised images.

keras_er's models take raw pixels, 0-255, as keras.applications models do: `keras_er.zoo.build`, the zoo and
`keras-er train` put the dataset's per-channel normalisation (`keras.layers.Normalization`, named
"normalize_pixels") in front of the network. A batch that is already normalised would pass through it twice
and give a plausible, wrong accuracy; `RawPixelGuard`, the model's last layer, makes that loud on every
backend, inside compiled graphs too: an image with a negative value and no value above `LARGEST_NORMALISED`
(mean-subtracted, std-scaled numbers lie within a few units of 0; a raw pixel is never negative) gets NaN
logits, so `evaluate` reports a NaN loss and `predict` NaN outputs. Raw-pixel images, of any brightness and
numeric dtype, get the network's logits untouched.

Examples:
    >>> import numpy as np
    >>> guard = RawPixelGuard()
    >>> logits = np.ones((2, 3), "float32")
    >>> images = np.stack([np.full((2, 2, 1), 200.0), np.full((2, 2, 1), -1.5)])  # raw, then normalised
    >>> keras.ops.convert_to_numpy(guard([images, logits])).tolist()
    [[1.0, 1.0, 1.0], [nan, nan, nan]]
"""

import keras
from keras import ops

# Normalised CIFAR/MNIST images stay below 3; a raw image with a value below 0 does not exist.
LARGEST_NORMALISED = 8.0
FRONT = "normalize_pixels"
GUARD = "raw_pixel_guard"


@keras.saving.register_keras_serializable(package="keras_er")
class RawPixelGuard(keras.layers.Layer):
    """`[pixels, logits] -> logits`, NaN for the images that look normalised (see the module docstring)."""

    def call(self, inputs):
        pixels, logits = inputs
        values = ops.cast(pixels, logits.dtype)
        axes = tuple(range(1, len(values.shape)))
        normalised = ops.logical_and(
            ops.min(values, axis=axes) < 0,
            ops.max(values, axis=axes) <= LARGEST_NORMALISED,
        )
        normalised = ops.reshape(normalised, (-1,) + (1,) * (len(logits.shape) - 1))
        return ops.where(normalised, ops.cast(float("nan"), logits.dtype), logits)

    def compute_output_shape(self, input_shape):
        return input_shape[1]


def with_raw_pixel_front(network, mean, std, guard=True):
    """`network` behind a fixed per-channel normalisation (pixel units), then the guard (`guard=False`: none)."""
    shape = tuple(network.inputs[0].shape[1:])
    if len(mean) != shape[-1]:
        raise ValueError(
            f"The input normalisation has {len(mean)} channels but the model takes {shape}; "
            "pass include_preprocessing=False and normalise the inputs yourself."
        )
    pixels = keras.Input(shape, name="pixels")
    normalize = keras.layers.Normalization(mean=list(mean), variance=[s * s for s in std], name=FRONT)
    logits = network(normalize(pixels))
    if guard:
        logits = RawPixelGuard(name=GUARD)([pixels, logits])
    return keras.Model(pixels, logits, name=network.name)


def takes_raw_pixels(model):
    """Whether `model` has keras_er's raw-pixel front (`with_raw_pixel_front`)."""
    names = [layer.name for layer in getattr(model, "layers", ())]
    return len(names) in (3, 4) and names[1] == FRONT and names[3:] in ([], [GUARD])


def without_preprocessing(model):
    """The bare network behind a model's raw-pixel front (else `model`)."""
    return model.layers[2] if takes_raw_pixels(model) else model


def check_pixels_match(model, batches):
    """Refuse normalised batches (`data.load(..., normalize=True)`) for a model with the raw-pixel front.

    The other mix-up, raw pixels for a bare network, cannot be told from a model that normalises in a
    way of its own, so it passes; batches that do not say what they hold (numpy arrays) pass too.
    """
    if getattr(batches, "normalized", False) and takes_raw_pixels(model):
        raise ValueError(
            f"Model '{model.name}' takes raw pixels (0-255; it normalises them itself) but the batches are "
            "normalised: load them with keras_er.data.load(...) without normalize=True."
        )
