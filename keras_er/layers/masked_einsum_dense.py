"""MaskedEinsumDense: keras.layers.EinsumDense with a fixed ER mask on its kernel."""

import math

import keras
from keras import ops

from keras_er.layers.masked_layer import MaskedLayer


@keras.saving.register_keras_serializable(package="keras_er")
class MaskedEinsumDense(MaskedLayer):
    """An `EinsumDense` layer whose kernel is multiplied by a fixed 0/1 mask.

    Takes the arguments of `keras.layers.EinsumDense` (`equation`,
    `output_shape`, `bias_axes`, ...) plus `density`, `seed`, `popup` and
    `popup_density` as in `MaskedDense`. The mask has the kernel's shape,
    whatever the equation makes it; popup's frozen kernel is scaled by the
    kernel axes the equation sums over (the layer's fan-in).

    Examples:
        >>> qkv = MaskedEinsumDense("abc,cde->abde", output_shape=(None, 4, 8),
        ...                         bias_axes="de", density=0.25, seed=0)
        >>> tuple(qkv(keras.ops.ones((2, 5, 16))).shape)
        (2, 5, 4, 8)
        >>> tuple(qkv.mask.shape)
        (16, 4, 8)
    """

    def __init__(self, equation, output_shape, bias_axes=None, **kwargs):
        kwargs.pop("use_bias", None)  # bias_axes says whether there is a bias
        super().__init__(use_bias=bias_axes is not None, **kwargs)
        if not isinstance(equation, str) or equation.count(",") != 1 or "->" not in equation:
            raise ValueError(
                f"`equation` must look like 'ab,bc->ac' (an input, a kernel, an output); got {equation!r}."
            )
        self.equation = equation
        self.partial_output_shape = output_shape
        self.bias_axes = bias_axes

    def _shape_probe(self):
        # Keras' own EinsumDense knows the kernel and bias shapes an equation implies.
        return keras.layers.EinsumDense(
            self.equation,
            self.partial_output_shape,
            bias_axes=self.bias_axes,
            kernel_initializer="zeros",
            name=f"{self.name}_shape_probe",
        )

    def build(self, input_shape):
        probe = self._shape_probe()
        probe.build(input_shape)
        shape = tuple(probe.kernel.shape)
        self._add_kernel(shape, fan_in=self._fan_in(shape))
        if self.use_bias:
            self._add_bias(tuple(probe.bias.shape))
        else:
            self.bias = None

    def _fan_in(self, kernel_shape):
        """The product of the kernel axes that the equation sums over."""
        inputs, rest = self.equation.split(",")
        kernel, output = rest.split("->")
        summed = [size for axis, size in zip(kernel, kernel_shape) if axis in inputs and axis not in output]
        return max(1, math.prod(summed))

    def call(self, inputs):
        outputs = ops.einsum(self.equation, inputs, self.effective_kernel())
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        shape = self._shape_probe().compute_output_shape(input_shape)
        if "..." in self.equation:
            return shape
        # Keras leaves an axis given as None in `output_shape` unknown even when
        # the equation carries it over from the input: take it from there.
        inputs, rest = self.equation.split(",")
        output = rest.split("->")[1]
        known = dict(zip(inputs, input_shape))
        return tuple(known.get(axis) if size is None else size for axis, size in zip(output, shape))

    def get_config(self):
        config = super().get_config()
        del config["use_bias"]
        return {
            **config,
            "equation": self.equation,
            "output_shape": self.partial_output_shape,
            "bias_axes": self.bias_axes,
        }
