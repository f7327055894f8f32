"""The shared machinery of every masked layer: kernel, mask, popup scores."""

import keras
import numpy as np
from keras import ops

from keras_er import arguments
from keras_er.layers import popup as popup_lib
from keras_er.layers.placeholders import PlaceholderWeights
from keras_er.layers.weight_setup import array_initializer
from keras_er.layers.weight_setup import check_mask
from keras_er.layers.weight_setup import fresh_seed
from keras_er.layers.weight_setup import optional_initializer
from keras_er.layers.weight_setup import zero_optimizer_slots
from keras_er.masks.sampling import sample_masks
from keras_er.masks.schemes import validate_density


class MaskedLayer(PlaceholderWeights, keras.layers.Layer):
    """Base class: a layer whose kernel is multiplied by a fixed 0/1 mask.

    Subclasses create their weights with `_add_kernel` / `_add_bias` and use
    `effective_kernel()` in `call`. The mask is a non-trainable `uint8`
    weight with the kernel's shape: one byte per weight, in memory and in
    `.keras` files, cast to the kernel's dtype where it is used (Keras reads
    the float 0/1 mask of an older file into it exactly). `assign_mask` sets
    it and zeroes the masked kernel entries, which then stay zero: their
    gradient is zero because the forward pass uses `kernel * mask`.

    In popup mode the kernel is frozen and a trainable `scores` weight picks,
    per layer, the top `popup_density` fraction of the mask's weights by
    `|scores|` (edge-popup with a straight-through gradient).
    """

    # Keras's DepthwiseConv2D names its kernel arguments `depthwise_*`.
    kernel_arg_prefix = "kernel"

    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        kernel_regularizer=None,
        kernel_constraint=None,
        bias_initializer="zeros",
        bias_regularizer=None,
        bias_constraint=None,
        density=None,
        seed=None,
        popup=False,
        popup_density=0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if density is not None:
            density = validate_density(density)
        seed = arguments.seed(seed, allow_none=True)
        if not isinstance(popup, bool):
            raise TypeError(f"`popup` must be True or False; got {popup!r}.")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = optional_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.density = density
        self.seed = seed
        self.popup = popup
        self.popup_density = validate_density(popup_density, "popup_density")

    def _add_kernel(self, shape, fan_in):
        initializer = self.kernel_initializer
        seed = self.seed if self.seed is not None else fresh_seed()
        if self.popup and initializer is None:
            kernel_init = array_initializer(popup_lib.frozen_kernel(shape, fan_in, seed))
        else:
            kernel_init = initializer or keras.initializers.GlorotUniform()
        mask = np.ones(shape, dtype=bool) if self.density is None else sample_masks([shape], [self.density], seed)[0]
        self.kernel = self.add_weight(
            name="kernel",
            shape=shape,
            initializer=kernel_init,
            regularizer=None if self.popup else self._masked_regularizer(),
            constraint=self.kernel_constraint,
            trainable=not self.popup,
        )
        self.mask = self.add_weight(
            name="mask",
            shape=shape,
            initializer=array_initializer(mask),
            dtype="uint8",
            trainable=False,
        )
        if self.popup:
            self.scores = self.add_weight(
                name="scores",
                shape=shape,
                initializer=array_initializer(popup_lib.initial_scores(shape, fan_in, seed)),
                trainable=True,
            )
        self.fan_in = fan_in
        self.resolved_seed = seed  # the seed actually used, also when `seed` is None
        self._zero_outside_mask()

    def _masked_regularizer(self):
        """The kernel regularizer applied to `kernel * mask`.

        Regularizing the raw kernel would push masked entries off zero where
        the penalty's gradient at 0 is not 0 (L1 on JAX: d|w|/dw = 1 at 0).
        """
        regularizer = self.kernel_regularizer
        if regularizer is None:
            return None
        return lambda kernel: regularizer(kernel * self.float_mask(kernel))

    def _zero_outside_mask(self):
        # Masked kernel entries (and popup scores) get zero gradient, so once
        # zero they stay zero; the compact weight format relies on it.
        trained = self.scores if self.popup else self.kernel
        trained.assign(trained * self.float_mask(trained))

    def _add_bias(self, shape):
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(shape,) if isinstance(shape, int) else tuple(shape),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=not self.popup,
            )

    def effective_kernel(self):
        """The kernel the forward pass uses: `kernel * mask` (and popup top-k)."""
        kernel = ops.convert_to_tensor(self.kernel)  # under mixed precision: the compute dtype
        kernel = kernel * self.float_mask(kernel)
        if self.popup:
            kernel = kernel * popup_lib.score_mask(self.scores, self.mask, self.popup_density)
        return kernel

    def float_mask(self, like):
        """The mask as a tensor of `like`'s dtype (a variable's, or a tensor's)."""
        return ops.cast(self.mask, like.dtype)

    def assign_mask(self, mask, optimizer=None):
        """Set the 0/1 mask (numpy or tensor of the kernel's shape).

        Outside popup mode the kernel is multiplied by the mask, so masked
        weights are exactly zero in the stored kernel too; in popup mode the
        frozen kernel is kept and the scores outside the mask are zeroed.
        With a built `optimizer`, its slots for the kernel (or scores) -
        momentum, Adam moments, the EMA average - are zeroed outside the mask
        too, so momentum cannot carry masked weights off zero.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet; call it on an input (or `build` it) before `assign_mask`."
            )
        mask = check_mask(self.name, mask, tuple(self.kernel.shape))
        self.mask.assign(mask.astype("uint8"))
        self._zero_outside_mask()
        self._zero_optimizer_slots(optimizer, mask)

    def _zero_optimizer_slots(self, optimizer, mask):
        trained = self.scores if self.popup else self.kernel
        zero_optimizer_slots(optimizer, trained, mask)

    @property
    def kernel_variable(self):
        """The stored kernel (a variable): what the masked layer API reads and assigns."""
        return self.kernel

    def dense_kernels(self):
        """Kernel-like weights of this layer that carry no mask (none by default)."""
        return []

    def active_mask(self):
        """Numpy 0/1 array of the weights the forward pass really uses."""
        mask = ops.convert_to_numpy(self.mask).astype(bool)
        if self.popup:
            hard = popup_lib.score_mask(self.scores, self.mask, self.popup_density)
            mask &= ops.convert_to_numpy(hard).astype(bool)
        return mask

    def _apply_bias_and_activation(self, outputs, channel_axis=-1):
        if self.use_bias:
            shape = [1] * len(outputs.shape)
            shape[channel_axis] = -1
            outputs = outputs + ops.reshape(self.bias, shape)
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        config = super().get_config()
        prefix = self.kernel_arg_prefix
        config.update(
            {
                f"{prefix}_initializer": None
                if self.kernel_initializer is None
                else keras.initializers.serialize(self.kernel_initializer),
                f"{prefix}_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                f"{prefix}_constraint": keras.constraints.serialize(self.kernel_constraint),
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "density": self.density,
                "seed": self.seed,
                "popup": self.popup,
                "popup_density": self.popup_density,
            }
        )
        return config
