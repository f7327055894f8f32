"""VGG11/13/16/19 with BatchNorm, CIFAR variant (Simonyan & Zisserman 2015).

3x3 conv-BN-ReLU stacks with max-pooling, then global average pooling and one
Dense classifier (512 -> classes), as is usual for 32x32 inputs.
"""

import keras
from keras import layers

from keras_er.models.common import LAYOUT
from keras_er.models.common import check_arguments
from keras_er.models.common import classifier
from keras_er.models.common import conv_bn
from keras_er.models.common import model_input
from keras_er.models.common import variant

# Filters per conv; "M" is a 2x2 max-pool.
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}


def vgg(depth, input_shape=(32, 32, 3), classes=10):
    """VGG-`depth` with BatchNorm.

    Examples:
        >>> vgg(16).count_params()
        14732490
    """
    if depth not in CONFIGS:
        raise ValueError(f"`depth` must be one of {sorted(CONFIGS)}; got {depth!r}.")
    check_arguments(input_shape, classes)
    inputs = model_input(input_shape)
    x = inputs
    conv_index = 0
    for item in CONFIGS[depth]:
        if item == "M":
            x = layers.MaxPooling2D(2, data_format=LAYOUT, name=f"pool{conv_index}")(x)
        else:
            conv_index += 1
            x = conv_bn(x, item, 3, name=f"block{conv_index}")
    return keras.Model(inputs, classifier(x, classes), name=f"vgg{depth}")


vgg11, vgg13, vgg16, vgg19 = (
    variant(vgg, depth, "VGG-{depth} with BatchNorm (dense); see `vgg`.") for depth in CONFIGS
)
