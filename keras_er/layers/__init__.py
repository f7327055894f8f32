"""Masked Keras 3 layers: a fixed 0/1 mask on the kernel, optional popup scores."""

from keras_er.layers import conv_paths
from keras_er.layers.conv_paths import set_conv_path
from keras_er.layers.masked_conv import MaskedConv1D
from keras_er.layers.masked_conv import MaskedConv2D
from keras_er.layers.masked_conv import MaskedConv3D
from keras_er.layers.masked_conv import MaskedConvBase
from keras_er.layers.masked_conv_transpose import MaskedConv2DTranspose
from keras_er.layers.masked_dense import MaskedDense
from keras_er.layers.masked_depthwise_conv import MaskedDepthwiseConv2D
from keras_er.layers.masked_depthwise_conv import MaskedSeparableConv2D
from keras_er.layers.masked_einsum_dense import MaskedEinsumDense
from keras_er.layers.masked_layer import MaskedLayer

__all__ = [
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedConv2DTranspose",
    "MaskedConv3D",
    "MaskedConvBase",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedEinsumDense",
    "MaskedLayer",
    "MaskedSeparableConv2D",
    "conv_paths",
    "set_conv_path",
]
