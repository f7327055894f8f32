"""What popup (edge-popup) training trains: the scores, not the affine of normalization."""

import keras

from keras_er.masks.model import leaf_layers

NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def freeze_normalization_affine(model):
    """Make the scale/offset of every normalization layer non-trainable.

    Popup training trains only scores (edge-popup uses non-affine BatchNorm);
    moving statistics still update. Per-variable `trainable` flags are not
    saved in `.keras` files, so `keras_er.training.fit` applies this again
    to any model with popup layers.
    """
    for layer in leaf_layers(model):
        if isinstance(layer, NORMALIZATION):
            for variable in (getattr(layer, "gamma", None), getattr(layer, "beta", None)):
                if variable is not None:
                    variable.trainable = False
