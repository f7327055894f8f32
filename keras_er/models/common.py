"""Building blocks shared by the architectures.

Every spatial layer is built `channels_last` explicitly: inputs are
(height, width, channels) whatever `keras.config.image_data_format()` says,
so a model (and a zoo file) is the same network under either global setting.
"""

import keras
from keras import layers

from keras_er import arguments
from keras_er.layers.batch_norm import BatchNormalization
from keras_er.layers.conv import Conv2D

LAYOUT = "channels_last"


def conv_bn(x, filters, kernel_size, strides=1, name=None, relu=True):
    """Conv (no bias) -> BatchNorm (-> ReLU), the unit every model here stacks."""
    x = Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        data_format=LAYOUT,
        name=f"{name}_conv",
    )(x)
    x = BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def classifier(x, classes, name="head"):
    x = layers.GlobalAveragePooling2D(data_format=LAYOUT, name="pool")(x)
    return layers.Dense(classes, name=name)(x)


def check_arguments(input_shape, classes):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in input_shape)
    ):
        raise ValueError(f"`input_shape` must be (height, width, channels) of positive ints; got {input_shape!r}.")
    arguments.integer(classes, "classes", minimum=1)


def model_input(input_shape):
    return keras.Input(tuple(input_shape), name="images")


def variant(function, depth, doc):
    """`function` with `depth` fixed, named e.g. `resnet20`, for the registry."""

    def build(input_shape=(32, 32, 3), classes=10, **kwargs):
        return function(depth, input_shape, classes, **kwargs)

    build.__name__ = build.__qualname__ = f"{function.__name__.split('_')[0]}{depth}"
    build.__doc__ = doc.format(depth=depth)
    return build
