import itertools

import keras
import numpy as np
import pytest

from keras_er import layers
from keras_er.layers import MaskedConv2D
from keras_er.layers import conv_paths
from tests.helpers import to_numpy

# (input height, width), kernel, strides, dilation, padding: every combination the matmul path must get right.
CASES = [
    case
    for case in itertools.product(
        [(2, 2), (5, 7), (8, 3)], [(3, 3), (1, 1), (2, 3)], [(1, 1), (2, 1)], [(1, 1), (2, 2)], ["same", "valid"]
    )
    if (case[2] == (1, 1) or case[3] == (1, 1))
    and (case[4] == "same" or all(n >= (k - 1) * d + 1 for n, k, d in zip(case[0], case[1], case[3])))
]


@pytest.fixture
def conv_path():
    """Restores the process-wide mode after a test that sets it."""
    previous = conv_paths.conv_path()
    yield conv_paths.set_conv_path
    conv_paths.set_conv_path(previous)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("spatial,kernel_size,strides,dilation,padding", CASES)
def test_matmul_conv2d_equals_the_backend_convolution(spatial, kernel_size, strides, dilation, padding, data_format):
    rng = np.random.default_rng(0)
    shape = (2, *spatial, 3) if data_format == "channels_last" else (2, 3, *spatial)
    x = rng.normal(size=shape).astype("float32")
    kernel = rng.normal(size=kernel_size + (3, 4)).astype("float32")
    arguments = dict(strides=strides, padding=padding, dilation_rate=dilation, data_format=data_format)
    expected = to_numpy(keras.ops.conv(x, kernel, **arguments))
    got = to_numpy(
        conv_paths.matmul_conv2d(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(kernel), **arguments)
    )
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("popup", [False, True])
def test_masked_conv_gives_the_same_outputs_and_gradients_on_both_paths(conv_path, popup):
    keras.utils.set_random_seed(0)
    layer = MaskedConv2D(5, 3, padding="same", activation="relu", density=0.4, seed=3, popup=popup)
    x = keras.ops.convert_to_tensor(np.random.default_rng(1).normal(size=(4, 2, 2, 6)).astype("float32"))
    model = keras.Sequential([keras.Input((2, 2, 6)), layer])
    model.compile("sgd", "mse")
    y = np.random.default_rng(2).normal(size=(4, 2, 2, 5)).astype("float32")
    results = {}
    for mode in ("native", "matmul"):
        conv_path(mode)
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        clone.compile(keras.optimizers.SGD(0.5), "mse")
        outputs = to_numpy(clone(x))
        clone.train_on_batch(x, y)
        results[mode] = outputs, [to_numpy(w) for w in clone.trainable_weights]
    np.testing.assert_allclose(results["matmul"][0], results["native"][0], atol=1e-5)
    for got, expected in zip(results["matmul"][1], results["native"][1]):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    trained = results["matmul"][1][0]
    assert np.all(trained[to_numpy(layer.mask) == 0] == 0)


def test_auto_uses_the_matmul_only_for_xla_on_a_cpu_and_2_pixel_outputs(conv_path):
    conv_path("auto")
    on_xla_cpu = keras.backend.backend() == "jax" and keras.distribution.list_devices()[0].startswith("cpu")
    assert conv_paths.use_matmul([2, 2], groups=1, rank=2) is on_xla_cpu
    assert conv_paths.use_matmul([4, 4], groups=1, rank=2) is False
    assert conv_paths.use_matmul([2, 2], groups=2, rank=2) is False
    assert conv_paths.use_matmul([2], groups=1, rank=1) is False
    assert conv_paths.use_matmul([None, 2], groups=1, rank=2) is False


def test_forced_modes(conv_path):
    conv_path("matmul")
    assert conv_paths.use_matmul([8, 8], groups=1, rank=2)
    assert not conv_paths.use_matmul([8, 8], groups=4, rank=2)
    conv_path("native")
    assert not conv_paths.use_matmul([2, 2], groups=1, rank=2)


def test_set_conv_path_refuses_unknown_modes_and_returns_the_previous(conv_path):
    conv_path("native")
    assert conv_path("auto") == "native"
    with pytest.raises(ValueError, match="`mode` must be one of auto, native, matmul"):
        conv_path("im2col")
    assert conv_paths.conv_path() == "auto"


SMALL_INPUT_LAYERS = {
    "MaskedConv1D": (lambda: layers.MaskedConv1D(4, 3, density=0.5, seed=0), (1, 2, 3)),
    "MaskedConv2D": (lambda: layers.MaskedConv2D(4, 3, density=0.5, seed=0), (1, 2, 2, 3)),
    "MaskedConv2D dilated": (lambda: layers.MaskedConv2D(4, 2, dilation_rate=3, density=0.5, seed=0), (1, 3, 3, 3)),
    "MaskedConv3D": (lambda: layers.MaskedConv3D(4, 3, density=0.5, seed=0), (1, 2, 5, 5, 3)),
    "MaskedDepthwiseConv2D": (lambda: layers.MaskedDepthwiseConv2D(3, density=0.5, seed=0), (1, 2, 2, 3)),
    "MaskedSeparableConv2D": (lambda: layers.MaskedSeparableConv2D(4, 3, density=0.5, seed=0), (1, 2, 2, 3)),
    "Conv2D": (lambda: layers.Conv2D(4, 3), (1, 2, 2, 3)),
}


@pytest.mark.parametrize("mode", ["native", "matmul"])
@pytest.mark.parametrize("name", sorted(SMALL_INPUT_LAYERS))
def test_an_input_smaller_than_the_kernel_is_refused_on_every_path(conv_path, mode, name):
    conv_path(mode)
    make, shape = SMALL_INPUT_LAYERS[name]
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        make()(np.ones(shape, "float32"))  # eager call
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        make()(keras.Input(shape[1:]))  # building a Functional model


def test_matmul_conv2d_refuses_an_empty_output():
    x = keras.ops.ones((1, 2, 2, 3))
    kernel = keras.ops.ones((3, 3, 3, 4))
    with pytest.raises(ValueError, match="zero or negative"):
        conv_paths.matmul_conv2d(x, kernel, (1, 1), "valid", (1, 1), "channels_last")
