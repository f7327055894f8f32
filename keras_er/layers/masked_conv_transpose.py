"""MaskedConv2DTranspose: a transposed convolution with a fixed ER mask."""

import math

import keras
from keras import ops

from keras_er import arguments
from keras_er.layers.masked_conv import MaskedConvBase
from keras_er.layers.masked_conv import positive_ints


def _transpose_length(length, kernel, stride, dilation, padding, output_padding):
    """The output length of a transposed convolution, as Keras computes it."""
    if length is None:
        return None
    kernel = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        return (length - 1) * stride + kernel + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + kernel % 2 + output_padding


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedConv2DTranspose(MaskedConvBase):
    """Transposed 2D convolution with a fixed 0/1 mask; the arguments of
    `keras.layers.Conv2DTranspose` plus `density`, `seed`, `popup`, `popup_density`.
    The kernel (and mask) has Keras' shape `(kh, kw, filters, in_channels)`.

    Examples:
        >>> up = MaskedConv2DTranspose(4, 3, strides=2, padding="same", density=0.5, seed=0)
        >>> tuple(up(keras.ops.ones((1, 5, 5, 3))).shape)
        (1, 10, 10, 4)
    """

    convolution = staticmethod(ops.conv_transpose)

    def __init__(self, filters, kernel_size, output_padding=None, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = arguments.integer(filters, "filters", minimum=1)
        self.output_padding = (
            None if output_padding is None else positive_ints(output_padding, self.rank, "output_padding")
        )

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        shape = self.kernel_size + (self.filters, channels)
        self._add_kernel(shape, fan_in=math.prod(self.kernel_size) * self.filters)
        self._add_bias(self.filters)

    def output_channels(self, input_channels):
        return self.filters

    def _convolution_arguments(self):
        return {**super()._convolution_arguments(), "output_padding": self.output_padding}

    def _output_length(self, length, axis):
        padding = None if self.output_padding is None else self.output_padding[axis]
        return _transpose_length(
            length, self.kernel_size[axis], self.strides[axis], self.dilation_rate[axis], self.padding, padding
        )

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "output_padding": self.output_padding}
