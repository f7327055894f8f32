"""Conv2D: Keras' layer, computing its convolution the way `conv_paths` chooses (the architectures use it).

Same weights, config and results as `keras.layers.Conv2D` (up to float32 round-off); on XLA:CPU a convolution
with a 2-pixel-wide output runs as one matmul instead of XLA's pathologically slow kernel (see `conv_paths`).
`keras_er.sparsify` replaces it by `MaskedConv2D` exactly as it replaces Keras' Conv2D.

Examples:
    >>> tuple(Conv2D(4, 3, padding="same")(keras.ops.ones((1, 2, 2, 3))).shape)
    (1, 2, 2, 4)
"""

import keras

from keras_er.layers import conv_paths
from keras_er.layers.placeholders import PlaceholderWeights


@keras.saving.register_keras_serializable(package="keras_er")
class Conv2D(PlaceholderWeights, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose convolution follows `conv_paths.set_conv_path` (see the module docstring)."""

    def convolution_op(self, inputs, kernel):
        output = self.compute_output_shape(inputs.shape)
        spatial = output[1:-1] if self.data_format == "channels_last" else output[2:]
        if not conv_paths.use_matmul(spatial, self.groups, len(spatial)):
            return super().convolution_op(inputs, kernel)
        return conv_paths.matmul_conv2d(
            inputs, kernel, self.strides, self.padding, self.dilation_rate, self.data_format
        )
