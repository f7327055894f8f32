"""Models masked in place (a subclassed model, a MultiHeadAttention block) for the DST and pruning tests."""

import warnings

import keras
import numpy as np

import keras_er
from keras_er import masks
from tests.helpers import to_numpy
from tests.test_conversion_any_model import attention_block
from tests.test_conversion_any_model import subclassed

BUILDERS = {"subclassed": subclassed, "attention": attention_block}


def in_place_model(name, density, seed=0):
    """`(model, x, y)`: the model sparsified in place (its masked layers are Keras' own), 16 samples, 3 classes."""
    keras.utils.set_random_seed(seed)
    model, data = BUILDERS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = keras_er.sparsify(model, density=density, seed=seed)
    assert all(type(layer).__name__.startswith("InPlaceMasked") for layer in in_place_layers(model))
    rng = np.random.default_rng(seed)
    return model, data(rng, n=16), rng.integers(0, 3, 16)


def in_place_layers(model):
    """The in-place masked layers (MaskedDense heads of a cloned Functional left out)."""
    return [layer for layer in masks.masked_layers(model) if hasattr(layer, "keras_class")]


def compile_for_classes(model, learning_rate=0.05):
    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )


def kept(model):
    return sum(int(to_numpy(layer.mask).sum()) for layer in masks.masked_layers(model))


def size(model):
    return sum(int(np.prod(layer.mask.shape)) for layer in masks.masked_layers(model))


def assert_masked_weights_are_zero(model):
    for layer in masks.masked_layers(model):
        mask = to_numpy(layer.mask)
        assert np.all(to_numpy(layer.kernel_variable)[mask == 0] == 0), layer.path
