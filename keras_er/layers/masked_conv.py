"""MaskedConv1D/2D/3D: convolutions with a fixed ER mask, and their shared base."""

import math

import keras
from keras import ops

from keras_er import arguments
from keras_er.layers import conv_paths
from keras_er.layers.masked_layer import MaskedLayer

PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")


def positive_ints(value, rank, name):
    """A positive int or `rank` positive ints, as a tuple of `rank` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * rank
    value = tuple(value)
    if len(value) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise ValueError(f"`{name}` must be a positive int or {rank} positive ints; got {value!r}.")
    return value


def _data_format(value):
    value = keras.config.image_data_format() if value is None else value
    if value not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {', '.join(DATA_FORMATS)}; got {value!r}.")
    return value


def _conv_length(length, kernel, stride, dilation, padding):
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    return (length - dilation * (kernel - 1) - 1) // stride + 1


def check_output_spatial(name, input_spatial, output_spatial, kernel_size, dilation_rate):
    """Refuse an input smaller than the (dilated) kernel: Keras' message, on every backend and conv path."""
    if any(size is not None and size < 1 for size in output_spatial):
        raise ValueError(
            f"Layer '{name}': computed output size would be zero or negative ({tuple(output_spatial)}) for an "
            f"input of spatial size {tuple(input_spatial)} with kernel_size={tuple(kernel_size)}, "
            f"dilation_rate={tuple(dilation_rate)} and padding='valid'; use a larger input or padding='same'."
        )


class MaskedConvBase(MaskedLayer):
    """Shared arguments and `call` of the masked convolutions.

    Subclasses set `rank` (spatial dimensions) and `convolution`
    (`ops.conv` or `ops.depthwise_conv`).
    """

    rank = 2

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = positive_ints(kernel_size, self.rank, "kernel_size")
        self.strides = positive_ints(strides, self.rank, "strides")
        self.dilation_rate = positive_ints(dilation_rate, self.rank, "dilation_rate")
        if not isinstance(padding, str) or padding.lower() not in PADDINGS:
            raise ValueError(f"`padding` must be one of {', '.join(PADDINGS)}; got {padding!r}.")
        self.padding = padding.lower()
        self.data_format = _data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    @property
    def channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _input_channels(self, input_shape):
        channels = input_shape[self.channel_axis]
        if channels is None:
            raise ValueError(f"Layer '{self.name}' needs a known channel dimension; got input shape {input_shape}.")
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2, axes={self.channel_axis: channels})
        return channels

    def call(self, inputs):
        self._output_spatial(inputs.shape)  # refuses an input smaller than the kernel
        outputs = self._convolve(inputs, self.effective_kernel())
        return self._apply_bias_and_activation(outputs, self.channel_axis)

    def _convolve(self, inputs, kernel):
        return self.convolution(inputs, kernel, **self._convolution_arguments())

    def _convolution_arguments(self):
        return dict(
            strides=self.strides, padding=self.padding, data_format=self.data_format, dilation_rate=self.dilation_rate
        )

    def _output_length(self, length, axis):
        """Output length along spatial `axis` (0-based) for an input of `length`."""
        return _conv_length(length, self.kernel_size[axis], self.strides[axis], self.dilation_rate[axis], self.padding)

    def _output_spatial(self, input_shape):
        first = 1 if self.data_format == "channels_last" else 2
        spatial = [input_shape[first + i] for i in range(self.rank)]
        output = [self._output_length(length, i) for i, length in enumerate(spatial)]
        check_output_spatial(self.name, spatial, output, self.kernel_size, self.dilation_rate)
        return output

    def compute_output_shape(self, input_shape):
        """`(batch, *spatial, out_channels)` (channels_first: channels second)."""
        spatial = self._output_spatial(input_shape)
        channels = self.output_channels(input_shape[self.channel_axis])
        if self.data_format == "channels_last":
            return (input_shape[0], *spatial, channels)
        return (input_shape[0], channels, *spatial)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }


class MaskedConv(MaskedConvBase):
    """A grouped convolution of `rank` spatial dimensions with a fixed 0/1 mask.

    The shared body of `MaskedConv1D`, `MaskedConv2D` and `MaskedConv3D`, which
    differ only in `rank`. Two-dimensional ones may take the matmul path
    (`keras_er.layers.set_conv_path`).
    """

    convolution = staticmethod(ops.conv)

    def __init__(self, filters, kernel_size, groups=1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        filters = arguments.integer(filters, "filters", minimum=1)
        groups = arguments.integer(groups, "groups", minimum=1)
        if filters % groups:
            raise ValueError(f"`filters` ({filters}) must be divisible by `groups` ({groups}).")
        self.filters = filters
        self.groups = groups

    def output_channels(self, input_channels):
        return self.filters

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"Input channels ({channels}) must be divisible by `groups` ({self.groups}).")
        shape = self.kernel_size + (channels // self.groups, self.filters)
        self._add_kernel(shape, fan_in=math.prod(self.kernel_size) * shape[-2])
        self._add_bias(self.filters)

    def _convolve(self, inputs, kernel):
        if not conv_paths.use_matmul(self._output_spatial(inputs.shape), self.groups, self.rank):
            return super()._convolve(inputs, kernel)
        return conv_paths.matmul_conv2d(inputs, kernel, **self._convolution_arguments())

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedConv2D(MaskedConv):
    """2D convolution whose kernel is multiplied by a fixed 0/1 mask.

    Takes the arguments of `keras.layers.Conv2D` (including `groups`), plus
    `density`, `seed`, `popup` and `popup_density` as in `MaskedDense`.
    The mask has the kernel's shape `(kh, kw, in_channels // groups, filters)`.

    Examples:
        >>> conv = MaskedConv2D(16, 3, padding="same", density=0.2, seed=1)
        >>> y = conv(keras.ops.ones((1, 8, 8, 3)))
        >>> tuple(y.shape)
        (1, 8, 8, 16)
    """

    rank = 2


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedConv1D(MaskedConv):
    """1D convolution with a fixed 0/1 mask; the arguments of `keras.layers.Conv1D`
    (without `padding="causal"`) plus `density`, `seed`, `popup`, `popup_density`.

    Examples:
        >>> tuple(MaskedConv1D(4, 3, density=0.5, seed=0)(keras.ops.ones((2, 10, 3))).shape)
        (2, 8, 4)
    """

    rank = 1


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedConv3D(MaskedConv):
    """3D convolution with a fixed 0/1 mask; the arguments of `keras.layers.Conv3D`
    plus `density`, `seed`, `popup`, `popup_density`.

    Examples:
        >>> tuple(MaskedConv3D(4, 3, density=0.5, seed=0)(keras.ops.ones((1, 5, 5, 5, 2))).shape)
        (1, 3, 3, 3, 4)
    """

    rank = 3
