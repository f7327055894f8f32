"""Masked Keras 3 layers (a fixed 0/1 mask on the kernel, optional popup scores), and the Conv2D and
BatchNormalization the architectures use (Keras' layers on a faster path: see `conv_paths`, `batch_norm`), and the
RawPixelGuard behind the raw-pixel front of every keras_er model (`pixels`). Importing it registers every keras_er
class a `.keras` file can name (`in_place` holders included)."""

from keras_er.layers import conv_paths
from keras_er.layers import in_place
from keras_er.layers.batch_norm import BatchNormalization
from keras_er.layers.conv import Conv2D
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
from keras_er.layers.pixels import RawPixelGuard

__all__ = [
    "BatchNormalization",
    "Conv2D",
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
    "RawPixelGuard",
    "conv_paths",
    "in_place",
    "set_conv_path",
]
