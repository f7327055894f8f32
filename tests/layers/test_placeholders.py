"""Placeholder weights: skipped initializers inside the context, unchanged draws everywhere else."""

import keras
import numpy as np
import pytest

from keras_er import zoo
from keras_er.layers import BatchNormalization
from keras_er.layers import Conv2D
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedDense
from keras_er.layers.placeholders import active
from keras_er.layers.placeholders import placeholder_weights
from keras_er.masks import layer_densities
from keras_er.masks import masked_layers
from keras_er.masks import sample_masks
from keras_er.zoo import registry
from tests.helpers import to_numpy

FLAGSHIP = "resnet20_erk_d0.1_cifar10"


def _built_layers():
    conv = Conv2D(4, 3, kernel_initializer="he_normal")
    conv.build((None, 8, 8, 3))
    norm = BatchNormalization()
    norm.build((None, 8, 8, 4))
    masked = MaskedConv2D(4, 3, density=0.5, seed=3, popup=True)
    masked.build((None, 8, 8, 3))
    dense = MaskedDense(5, density=0.5, seed=4)
    dense.build((None, 6))
    return conv, norm, masked, dense


def _configs(layers):
    return [{key: value for key, value in layer.get_config().items() if key != "name"} for layer in layers]


def test_inside_the_context_every_weight_is_zeros_and_configs_keep_their_initializers():
    outside = _configs(_built_layers())
    with placeholder_weights():
        assert active()
        layers = _built_layers()
        legacy = Conv2D(1, 1).add_weight((2, 3), "ones")  # Keras' positional (shape, initializer)
    assert not active()
    for layer in layers:
        for weight in layer.weights:
            assert not np.any(to_numpy(weight)), weight.path
    assert not np.any(to_numpy(legacy))
    assert _configs(layers) == outside


def test_outside_the_context_weights_are_keras_own_draws_and_the_numpy_masks():
    with pytest.raises(RuntimeError):
        with placeholder_weights():
            raise RuntimeError("left early")
    assert not active()
    initializer = keras.initializers.HeNormal(seed=7)
    conv = Conv2D(4, 3, kernel_initializer=initializer)
    conv.build((None, 8, 8, 3))
    expected = keras.initializers.HeNormal(seed=7)((3, 3, 3, 4))
    np.testing.assert_array_equal(to_numpy(conv.kernel), to_numpy(expected))
    dense = MaskedDense(5, density=0.5, seed=4)
    dense.build((None, 6))
    mask = sample_masks([(6, 5)], [0.5], 4)[0]
    np.testing.assert_array_equal(to_numpy(dense.mask), mask.astype("float32"))
    kernel = to_numpy(dense.kernel)
    assert np.all(kernel[mask] != 0) and not np.any(kernel[~mask])


def test_a_random_zoo_model_is_still_seeded_and_drawn():
    entry = next(e for e in registry.load_index() if e["id"] == FLAGSHIP)
    keras.utils.set_random_seed(0)
    first = zoo.resnet20_erk(0.1, pretrained=None, seed=registry.entry_seed(entry))
    keras.utils.set_random_seed(0)
    second = zoo.resnet20_erk(0.1, pretrained=None, seed=registry.entry_seed(entry))
    layers = masked_layers(first)
    shapes = [tuple(layer.kernel.shape) for layer in layers]
    masks = sample_masks(shapes, layer_densities(shapes, 0.1, "erk"), registry.entry_seed(entry))
    published = [to_numpy(layer.mask) for layer in masked_layers(zoo.load(FLAGSHIP))]
    for layer, twin, mask, loaded in zip(layers, masked_layers(second), masks, published):
        kernel = to_numpy(layer.kernel)
        np.testing.assert_array_equal(to_numpy(layer.mask), mask)  # bit-identical numpy draw
        np.testing.assert_array_equal(loaded, mask)  # the published file holds the same draw
        np.testing.assert_array_equal(kernel, to_numpy(twin.kernel))  # seeded
        assert np.all(kernel[mask] != 0) and not np.any(kernel[~mask])
        if mask.sum() > 500:  # He normal: std sqrt(2 / fan_in)
            assert np.std(kernel[mask]) == pytest.approx(np.sqrt(2 / layer.fan_in), rel=0.15), layer.name


def test_zoo_load_runs_no_initializer_of_keras_er_layers(monkeypatch):
    def refuse(self, shape, dtype=None):
        raise AssertionError(f"{type(self).__name__} ran for a weight that is loaded")

    for initializer in (keras.initializers.HeNormal, keras.initializers.Ones):  # conv kernels, BatchNorm
        monkeypatch.setattr(initializer, "__call__", refuse)
    entry = next(e for e in registry.load_index() if e["id"] == FLAGSHIP)
    model = zoo.load(FLAGSHIP)
    logits = to_numpy(model(zoo.reference_pixels(entry), training=False))
    assert np.abs(logits - np.array(entry["reference_logits"])).max() < 1e-4
