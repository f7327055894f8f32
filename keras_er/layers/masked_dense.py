"""MaskedDense: a Dense layer with a fixed Erdos-Renyi mask on its kernel."""

import keras
from keras import ops

from keras_er import arguments
from keras_er.layers.masked_layer import MaskedLayer


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedDense(MaskedLayer):
    """Densely-connected layer whose kernel is multiplied by a 0/1 mask.

    Takes the arguments of `keras.layers.Dense`, plus:

    Args:
        density: if given, the layer draws its own uniform ER mask with this
            density at build time; if None the mask starts all ones and is
            set later by `keras_er.masks.assign` or `keras_er.sparsify`.
        seed: seed of the mask (and, in popup mode, of the frozen kernel and
            the initial scores). Masks are drawn in numpy, so a seed gives
            the same mask on every backend.
        popup: if True, the kernel is frozen and trainable `scores` choose
            which masked weights are used (edge-popup, strong tickets).
        popup_density: fraction of the mask's weights popup keeps per layer.

    Examples:
        >>> layer = MaskedDense(64, activation="relu", density=0.1, seed=0)
        >>> y = layer(keras.ops.ones((2, 32)))
        >>> float(keras.ops.mean(layer.mask))  # ~0.1 of the 32 x 64 weights
        0.1...
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        density=None,
        seed=None,
        popup=False,
        popup_density=0.5,
        **kwargs,
    ):
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            kernel_constraint=kernel_constraint,
            bias_initializer=bias_initializer,
            bias_regularizer=bias_regularizer,
            bias_constraint=bias_constraint,
            activity_regularizer=activity_regularizer,
            density=density,
            seed=seed,
            popup=popup,
            popup_density=popup_density,
            **kwargs,
        )
        self.units = arguments.integer(units, "units", minimum=1)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True  # as keras.layers.Dense: an incoming mask passes through

    def build(self, input_shape):
        in_features = input_shape[-1]
        self._add_kernel((in_features, self.units), fan_in=in_features)
        self._add_bias(self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: in_features})

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.effective_kernel())
        return self._apply_bias_and_activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
