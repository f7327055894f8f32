"""MaskedDepthwiseConv2D and MaskedSeparableConv2D: depthwise convolutions with a fixed ER mask."""

import math

import keras
from keras import ops

from keras_er import arguments
from keras_er.layers import popup as popup_lib
from keras_er.layers.masked_conv import MaskedConvBase
from keras_er.layers.weight_setup import array_initializer
from keras_er.layers.weight_setup import optional_initializer


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedDepthwiseConv2D(MaskedConvBase):
    """Depthwise 2D convolution whose kernel is multiplied by a 0/1 mask.

    Takes the arguments of `keras.layers.DepthwiseConv2D` (`depth_multiplier`,
    `depthwise_initializer`, `depthwise_regularizer`, `depthwise_constraint`,
    ...), plus `density`, `seed`, `popup` and `popup_density`. The kernel has
    shape `(kh, kw, in_channels, depth_multiplier)`.

    Examples:
        >>> dw = MaskedDepthwiseConv2D(3, padding="same", density=0.5, seed=0)
        >>> tuple(dw(keras.ops.ones((1, 8, 8, 4))).shape)
        (1, 8, 8, 4)
    """

    kernel_arg_prefix = "depthwise"
    convolution = staticmethod(ops.depthwise_conv)

    def __init__(
        self,
        kernel_size,
        depth_multiplier=1,
        depthwise_initializer=None,
        depthwise_regularizer=None,
        depthwise_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size,
            kernel_initializer=depthwise_initializer,
            kernel_regularizer=depthwise_regularizer,
            kernel_constraint=depthwise_constraint,
            **kwargs,
        )
        self.depth_multiplier = arguments.integer(depth_multiplier, "depth_multiplier", minimum=1)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        shape = self.kernel_size + (channels, self.depth_multiplier)
        self._add_kernel(shape, fan_in=math.prod(self.kernel_size))
        self._add_bias(channels * self.depth_multiplier)

    def output_channels(self, input_channels):
        return input_channels * self.depth_multiplier

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedSeparableConv2D(MaskedConvBase):
    """Separable 2D convolution whose pointwise kernel carries a fixed 0/1 mask.

    Takes the arguments of `keras.layers.SeparableConv2D` plus `density`,
    `seed`, `popup` and `popup_density`. The ER graph is the pointwise
    kernel `(1, 1, in_channels * depth_multiplier, filters)`: it connects
    channels, as a Conv2D kernel does. The depthwise kernel filters each
    channel on its own (`kh * kw * in_channels * depth_multiplier` weights,
    a few percent of the layer) and stays dense; `keras_er.masks.summary`
    lists it as not masked. In popup mode both kernels are frozen random
    weights drawn from `seed`; only the scores of the pointwise kernel train.

    Examples:
        >>> sep = MaskedSeparableConv2D(8, 3, padding="same", density=0.25, seed=0)
        >>> tuple(sep(keras.ops.ones((1, 6, 6, 4))).shape)
        (1, 6, 6, 8)
        >>> tuple(sep.mask.shape), tuple(sep.depthwise_kernel.shape)
        ((1, 1, 4, 8), (3, 3, 4, 1))
    """

    kernel_arg_prefix = "pointwise"

    def __init__(
        self,
        filters,
        kernel_size,
        depth_multiplier=1,
        depthwise_initializer=None,
        pointwise_initializer=None,
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size,
            kernel_initializer=pointwise_initializer,
            kernel_regularizer=pointwise_regularizer,
            kernel_constraint=pointwise_constraint,
            **kwargs,
        )
        self.filters = arguments.integer(filters, "filters", minimum=1)
        self.depth_multiplier = arguments.integer(depth_multiplier, "depth_multiplier", minimum=1)
        self.depthwise_initializer = optional_initializer(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = keras.constraints.get(depthwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        middle = channels * self.depth_multiplier
        self._add_kernel((1,) * self.rank + (middle, self.filters), fan_in=middle)
        shape = self.kernel_size + (channels, self.depth_multiplier)
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel",
            shape=shape,
            initializer=self._depthwise_initializer(shape),
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
            trainable=not self.popup,
        )
        self._add_bias(self.filters)

    def _depthwise_initializer(self, shape):
        # Seeded from the layer's seed: a popup layer's frozen weights are reproducible.
        seed = (self.resolved_seed + 1) % 2**31
        if self.depthwise_initializer is not None:
            return self.depthwise_initializer
        if self.popup:
            return array_initializer(popup_lib.frozen_kernel(shape, math.prod(self.kernel_size), seed))
        return keras.initializers.GlorotUniform(seed=seed)

    def convolution(self, inputs, kernel, **arguments):
        return ops.separable_conv(inputs, self.depthwise_kernel, kernel, **arguments)

    def output_channels(self, input_channels):
        return self.filters

    def dense_kernels(self):
        return [self.depthwise_kernel]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": None
            if self.depthwise_initializer is None
            else keras.initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": keras.constraints.serialize(self.depthwise_constraint),
        }
