"""ResNet18/34/50 (He et al. 2016) with a 3x3 stem for 32x32 inputs.

`imagenet_stem=True` gives the original 7x7 stride-2 conv + max-pool stem.
Shortcuts that change shape are 1x1 projection conv + BN.
"""

import keras
from keras import layers

from keras_er.models.cifar_resnet import basic_block
from keras_er.models.common import LAYOUT
from keras_er.models.common import check_arguments
from keras_er.models.common import classifier
from keras_er.models.common import conv_bn
from keras_er.models.common import model_input
from keras_er.models.common import variant

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def bottleneck_block(x, filters, strides, name):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), with a projection where needed."""
    shortcut = x
    y = conv_bn(x, filters, 1, 1, name=f"{name}_1")
    y = conv_bn(y, filters, 3, strides, name=f"{name}_2")
    y = conv_bn(y, 4 * filters, 1, 1, name=f"{name}_3", relu=False)
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, strides, name=f"{name}_proj", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet(depth, input_shape=(32, 32, 3), classes=10, imagenet_stem=False):
    """ResNet-18, -34 (basic blocks) or -50 (bottlenecks).

    Examples:
        >>> resnet(18).count_params()  # CIFAR stem, 10 classes
        11183562
    """
    if depth not in STAGES:
        raise ValueError(f"`depth` must be one of {sorted(STAGES)}; got {depth!r}.")
    check_arguments(input_shape, classes)
    block = bottleneck_block if depth == 50 else basic_block
    inputs = model_input(input_shape)
    if imagenet_stem:
        x = conv_bn(inputs, 64, 7, 2, name="stem")
        x = layers.MaxPooling2D(3, 2, padding="same", data_format=LAYOUT, name="stem_pool")(x)
    else:
        x = conv_bn(inputs, 64, 3, name="stem")
    for stage, (blocks, filters) in enumerate(zip(STAGES[depth], (64, 128, 256, 512))):
        for index in range(blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, strides, name=f"stage{stage + 1}_block{index + 1}")
    return keras.Model(inputs, classifier(x, classes), name=f"resnet{depth}")


_DOC = "ResNet-{depth} (dense; `imagenet_stem=True` for 224px inputs); see `resnet`."
resnet18, resnet34, resnet50 = (variant(resnet, depth, _DOC) for depth in STAGES)
