"""How `Conv2D` and `MaskedConv2D` compute their convolution: the backend's own, or shifted slices and one matmul.

XLA's CPU convolution (the JAX backend on a CPU) is pathologically slow when a convolution's output is 2 pixels
wide (VGG's last block on 32 x 32 images), and no XLA flag changes it; written as one matmul over the nine
shifted windows (im2col) the same layer is about 20 times faster. Everywhere else the backend's convolution is
as fast or faster, so "auto" uses the matmul only there. The measurements are in the performance docs and
benchmarks/results/knobs.md.

Modes (`set_conv_path`): "auto" (the rule above), "native" (always the backend's convolution), "matmul" (always
the matmul where it applies: 2D, `groups=1`, known spatial sizes). Both compute the same convolution; results
differ by float32 round-off only.

Examples:
    >>> import numpy as np
    >>> x = keras.ops.convert_to_tensor(np.ones((1, 2, 2, 3), "float32"))
    >>> k = keras.ops.convert_to_tensor(np.ones((3, 3, 3, 4), "float32"))
    >>> y = matmul_conv2d(x, k, strides=(1, 1), padding="same", dilation_rate=(1, 1), data_format="channels_last")
    >>> keras.ops.convert_to_numpy(y)[0, :, :, 0].tolist()
    [[12.0, 12.0], [12.0, 12.0]]
"""

import functools

import keras
from keras import ops

MODES = ("auto", "native", "matmul")
_state = {"mode": "auto"}


def set_conv_path(mode):
    """Choose how every keras_er `Conv2D` and `MaskedConv2D` computes its convolution; returns the previous mode.

    Takes effect for functions traced afterwards (a compiled train step keeps the path it was traced with).

    Examples:
        >>> previous = set_conv_path("native")
        >>> set_conv_path(previous)
        'native'
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {', '.join(MODES)}; got {mode!r}.")
    previous, _state["mode"] = _state["mode"], mode
    return previous


def conv_path():
    """The current mode: "auto", "native" or "matmul"."""
    return _state["mode"]


@functools.cache
def _xla_on_cpu():
    if keras.backend.backend() != "jax":
        return False
    return keras.distribution.list_devices()[0].lower().startswith("cpu")


def use_matmul(output_spatial, groups, rank):
    """Whether a convolution with these output spatial sizes should be computed by `matmul_conv2d`."""
    mode = conv_path()
    if mode == "native" or rank != 2 or groups != 1 or any(size is None for size in output_spatial):
        return False
    if mode == "matmul":
        return True
    return _xla_on_cpu() and max(output_spatial) == 2


def _same_padding(length, kernel, stride, dilation):
    """(before, after) padding of Keras' "same" convolution (the TensorFlow convention on every backend)."""
    output = -(-length // stride)
    total = max((output - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def matmul_conv2d(inputs, kernel, strides, padding, dilation_rate, data_format):
    """`ops.conv` of a (kh, kw, in, out) `kernel`, as one matmul over the kh*kw shifted windows of `inputs`."""
    if data_format == "channels_first":
        inputs = ops.transpose(inputs, (0, 2, 3, 1))
    kh, kw, channels, filters = kernel.shape
    pads = [(0, 0), (0, 0), (0, 0), (0, 0)]
    if padding == "same":
        for axis, size in ((1, kh), (2, kw)):
            pads[axis] = _same_padding(inputs.shape[axis], size, strides[axis - 1], dilation_rate[axis - 1])
        inputs = ops.pad(inputs, pads)
    (sh, sw), (dh, dw) = strides, dilation_rate
    out_h = (inputs.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (inputs.shape[2] - dw * (kw - 1) - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"matmul_conv2d: computed output size would be zero or negative ({out_h}, {out_w}) for inputs of "
            f"shape {tuple(inputs.shape)} and a kernel of shape {tuple(kernel.shape)}."
        )
    windows = [
        inputs[:, i * dh : i * dh + (out_h - 1) * sh + 1 : sh, j * dw : j * dw + (out_w - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = ops.concatenate(windows, axis=-1) if len(windows) > 1 else windows[0]
    outputs = ops.matmul(columns, ops.reshape(kernel, (kh * kw * channels, filters)))
    return ops.transpose(outputs, (0, 3, 1, 2)) if data_format == "channels_first" else outputs
