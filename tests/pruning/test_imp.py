"""imp: iterative magnitude pruning with weight rewinding."""

import keras
import numpy as np
import pytest

from keras_er import masks as masks_lib
from keras_er.data import ImageBatches
from keras_er.layers import MaskedDense
from keras_er.pruning import imp
from keras_er.pruning import select
from keras_er.training import Recipe
from tests.helpers import masked_cnn
from tests.helpers import to_numpy


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10,)),
            MaskedDense(24, activation="relu", seed=seed),
            keras.layers.BatchNormalization(),
            MaskedDense(3, seed=seed + 1),
        ]
    )


def snapshot(model):
    return {w.path: to_numpy(w) for w in model.weights}


def layer_masks(model):
    return [to_numpy(layer.mask).astype(bool) for layer in masks_lib.masked_layers(model)]


class FakeTraining:
    """Moves every weight by seeded noise (so the trained magnitudes decide), records what it trained."""

    def __init__(self):
        self.trained = []

    def __call__(self, model, train, round_index):
        rng = np.random.default_rng(round_index)
        for weight in model.weights:
            if weight.name != "mask":
                noise = rng.normal(scale=0.5, size=tuple(weight.shape)).astype("float32")
                weight.assign(to_numpy(weight) + noise)
        for layer in masks_lib.masked_layers(model):  # training keeps masked weights at 0
            layer.kernel.assign(to_numpy(layer.kernel) * to_numpy(layer.mask))
        self.trained.append([to_numpy(layer.kernel) for layer in masks_lib.masked_layers(model)])
        return {"loss": 1.0 + round_index}


def test_two_rounds_multiply_the_density_and_rewind_the_survivors_to_their_initial_values():
    model = mlp()
    initial = snapshot(model)
    size = 10 * 24 + 24 * 3
    training = FakeTraining()
    seen = []
    records = imp(model, train=None, rounds=2, fit_fn=training, callback=lambda record, m: seen.append(record))
    assert seen == records
    assert [r["round"] for r in records] == [0, 1]
    first, second = round(0.8 * size), round(0.8 * round(0.8 * size))
    assert [round(r["density"] * size) for r in records] == [first, second]
    assert [r["trained_density"] for r in records] == [1.0, first / size]
    assert [r["metrics"] for r in records] == [{"loss": 1.0}, {"loss": 2.0}]
    # The second round pruned the weights it trained by magnitude, among the survivors of the first.
    masks = layer_masks(model)
    kernels = training.trained[1]
    expected = select.select_global([np.abs(k) for k in kernels], [k != 0 for k in kernels], second)
    for mask, e in zip(masks, expected):
        np.testing.assert_array_equal(mask, e)
    # Survivors hold their initial values, pruned weights 0, every other weight (bias, BatchNorm) rewound.
    layers = {layer.kernel.path: mask for layer, mask in zip(masks_lib.masked_layers(model), masks)}
    for weight in model.weights:
        value = to_numpy(weight)
        if weight.path in layers:
            np.testing.assert_array_equal(value, initial[weight.path] * layers[weight.path])
        elif weight.name != "mask":
            np.testing.assert_array_equal(value, initial[weight.path], err_msg=weight.path)


def test_a_per_layer_scheme_and_rewinding_to_an_epoch():
    model = mlp(seed=1)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 10)).astype("float32"), rng.integers(0, 3, 32)
    after_epoch_one = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0 and not after_epoch_one:
                after_epoch_one.append(snapshot(self.model))

    def fit_fn(model, train, round_index, callbacks=()):
        return model.fit(*train, batch_size=8, epochs=2, verbose=0, callbacks=[*callbacks, Record()])

    records = imp(model, (x, y), rounds=1, density_per_round=0.5, rewind_epoch=1, fit_fn=fit_fn, scheme="uniform")
    assert [round(d, 6) for d in records[0]["layer_densities"]] == [0.5, 0.5]
    assert set(records[0]["metrics"]) == {"loss"}
    rewound = after_epoch_one[0]
    for layer in masks_lib.masked_layers(model):
        mask = to_numpy(layer.mask)
        np.testing.assert_array_equal(to_numpy(layer.kernel), rewound[layer.kernel.path] * mask)


def test_the_default_fit_function_trains_with_the_recipe():
    rng = np.random.default_rng(0)
    train = ImageBatches(
        rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, 16), (128,) * 3, (64,) * 3, 8
    )
    model = masked_cnn(seed=0, density=1.0)
    records = imp(model, train, rounds=1, recipe=Recipe(epochs=1, warmup_epochs=0, batch_size=8))
    assert {"loss", "accuracy"} <= set(records[0]["metrics"])
    assert records[0]["trained_density"] == 1.0
    for layer in masks_lib.masked_layers(model):
        kernel, mask = to_numpy(layer.kernel), to_numpy(layer.mask)
        assert np.all(kernel[mask == 0] == 0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(rounds=0), ValueError, "`rounds` must be a positive integer"),
        (dict(density_per_round=1.0), ValueError, r"`density_per_round` must be in \(0, 1\)"),
        (dict(density_per_round=True), TypeError, "`density_per_round` must be a number"),
        (dict(rewind_epoch=-1), ValueError, "`rewind_epoch` must be a non-negative integer"),
        (dict(rewind_epoch=2), ValueError, "ended before that epoch"),
        (dict(scheme="nope"), ValueError, "Unknown scheme .* for `scheme`"),
        (dict(recipe=Recipe(epochs=1, warmup_epochs=0)), ValueError, "not both"),
    ],
)
def test_clear_errors(kwargs, error, message):
    def fit_fn(model, train, round_index, callbacks=()):
        return None  # never calls the callbacks

    arguments = dict(model=mlp(), train=None, rounds=1, fit_fn=fit_fn) | kwargs
    with pytest.raises(error, match=message):
        imp(**arguments)
