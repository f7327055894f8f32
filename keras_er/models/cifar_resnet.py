"""CIFAR ResNets (He et al. 2016, section 4.2): resnet20/32/44/56/110.

Three stages of 16/32/64 filters with `n` basic blocks each (depth 6n + 2).
Where the shape changes, the shortcut is a 1x1 projection conv + BN (as in
the ER paper's code), so ResNet20 has 22 weight tensors and 270,896 conv and
dense weights.
"""

import keras
from keras import layers

from keras_er.models.common import check_arguments
from keras_er.models.common import classifier
from keras_er.models.common import conv_bn
from keras_er.models.common import model_input
from keras_er.models.common import variant

DEPTHS = (20, 32, 44, 56, 110)


def basic_block(x, filters, strides, name):
    """Two 3x3 conv-BN units with an identity or 1x1-projection shortcut."""
    shortcut = x
    y = conv_bn(x, filters, 3, strides, name=f"{name}_1")
    y = conv_bn(y, filters, 3, 1, name=f"{name}_2", relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, name=f"{name}_proj", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_cifar(depth, input_shape=(32, 32, 3), classes=10):
    """A CIFAR ResNet of `depth` = 6n + 2 layers (20, 32, 44, 56, 110, ...).

    Examples:
        >>> model = resnet_cifar(20)
        >>> model.count_params()
        274042
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or (depth - 2) % 6 or depth < 8:
        raise ValueError(f"`depth` must be 6n + 2 (20, 32, 44, 56, 110); got {depth!r}.")
    check_arguments(input_shape, classes)
    blocks = (depth - 2) // 6
    inputs = model_input(input_shape)
    x = conv_bn(inputs, 16, 3, name="stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage + 1}_block{block + 1}")
    return keras.Model(inputs, classifier(x, classes), name=f"resnet{depth}")


resnet20, resnet32, resnet44, resnet56, resnet110 = (
    variant(resnet_cifar, depth, "CIFAR ResNet-{depth} (dense); see `resnet_cifar`.") for depth in DEPTHS
)
