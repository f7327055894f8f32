"""Masked weights stay exactly zero on the paths that used to move them."""

import keras
import numpy as np
import pytest

from keras_er import masks
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedEinsumDense
from keras_er.layers import MaskedSeparableConv2D
from tests.helpers import OPTIMIZERS
from tests.helpers import images
from tests.helpers import masked_cnn
from tests.helpers import masked_weights


def assert_masked_entries_are_zero(model):
    for name, (kernel, mask) in masked_weights(model).items():
        assert np.all(kernel[mask == 0] == 0), name


def compile_and_train(model, optimizer, steps=3):
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = images()
    for _ in range(steps):
        model.train_on_batch(x, y)


@pytest.mark.parametrize("regularizer", [keras.regularizers.L1(0.01), keras.regularizers.L1L2(0.01, 0.01)])
def test_an_l1_kernel_regularizer_leaves_masked_weights_at_zero(regularizer):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            MaskedConv2D(8, 3, density=0.3, seed=0, kernel_regularizer=regularizer),
            keras.layers.GlobalAveragePooling2D(),
            MaskedDense(4, density=0.3, seed=1, kernel_regularizer=regularizer),
        ]
    )
    compile_and_train(model, keras.optimizers.SGD(0.1, momentum=0.9))
    assert_masked_entries_are_zero(model)
    assert sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses) > 0  # it regularizes


def test_separable_and_einsum_layers_stay_sparse_under_adam_and_l1():
    l1 = keras.regularizers.L1(0.01)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            MaskedSeparableConv2D(8, 3, density=0.3, seed=0, pointwise_regularizer=l1),
            keras.layers.Reshape((36, 8)),
            MaskedEinsumDense(
                "abc,cd->abd", output_shape=(36, 4), bias_axes="d", density=0.3, seed=1, kernel_regularizer=l1
            ),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    before = [keras.ops.convert_to_numpy(layer.kernel) for layer in masks.masked_layers(model)]
    compile_and_train(model, keras.optimizers.Adam(0.01))
    assert_masked_entries_are_zero(model)
    after = [keras.ops.convert_to_numpy(layer.kernel) for layer in masks.masked_layers(model)]
    assert all(np.any(a != b) for a, b in zip(before, after))  # it trained


@pytest.mark.parametrize(
    "make_optimizer",
    [*OPTIMIZERS.values(), lambda: keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True, ema_overwrite_frequency=2)],
    ids=[*OPTIMIZERS, "sgd_ema_overwrite"],
)
def test_masks_redrawn_mid_training_stay_sparse_under_every_optimizer(make_optimizer):
    model = masked_cnn(density=0.5)
    compile_and_train(model, make_optimizer())  # slots now hold momentum for every weight
    masks.assign(model, density=0.3, scheme="erk", seed=5)
    x, y = images(seed=1)
    for _ in range(4):
        model.train_on_batch(x, y)
    assert_masked_entries_are_zero(model)
