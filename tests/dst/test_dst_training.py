"""SET and RigL through `keras_er.training.fit`: run folders and exact resume."""

import numpy as np
import pytest

from keras_er import dst
from keras_er import training
from keras_er.masks import masked_layers
from keras_er.training.recipe import Recipe
from tests.helpers import StopAt
from tests.helpers import masked_cnn
from tests.helpers import synthetic_batches
from tests.helpers import to_numpy


def synthetic():
    return synthetic_batches(n=32, batch_size=8)


def method(name, train):
    # 3 epochs x 4 steps: updates at steps 2, 4, 6 and 8 (before 0.75 x 12), two of them after epoch 1.
    kwargs = {"update_every": 2, "drop_fraction": 0.5, "seed": 3}
    return dst.RigL(data=train, **kwargs) if name == "rigl" else dst.SET(**kwargs)


@pytest.mark.parametrize("name", ["set", "rigl"])
def test_a_resumed_run_gives_the_masks_of_an_uninterrupted_one(tmp_path, name):
    recipe = Recipe(epochs=3, warmup_epochs=1, learning_rate=0.05)
    reference = masked_cnn(seed=0)
    start = [to_numpy(w) for w in reference.weights]
    initial_masks = [to_numpy(layer.mask) for layer in masked_layers(reference)]
    train = synthetic()
    full = method(name, train)
    training.fit(reference, train, recipe, out_dir=tmp_path / "a", verbose=0, callbacks=[full])
    assert [record["step"] for record in full.history] == [2, 4, 6, 8]

    interrupted = masked_cnn(seed=0)
    for w, value in zip(interrupted.weights, start):
        w.assign(value)
    train = synthetic()
    first = method(name, train)
    with pytest.raises(KeyboardInterrupt):
        training.fit(interrupted, train, recipe, out_dir=tmp_path / "b", verbose=0, callbacks=[first, StopAt(1)])
    assert [record["step"] for record in first.history] == [2, 4]

    resumed = masked_cnn(seed=7)  # a fresh process builds other weights and masks; the backup restores them
    train = synthetic()
    second = method(name, train)
    history = training.fit(resumed, train, recipe, out_dir=tmp_path / "b", resume=True, verbose=0, callbacks=[second])
    assert len(history.history["loss"]) == 2
    assert [record["step"] for record in second.history] == [6, 8]  # the schedule continues from the optimizer's step
    unnamed = lambda history: [(r["step"], r["fraction"], list(r["layers"].values())) for r in history]
    assert unnamed(second.history) == unnamed(full.history[2:])  # layer names differ between the models
    for layer_a, layer_b, initial in zip(masked_layers(reference), masked_layers(resumed), initial_masks):
        mask = to_numpy(layer_a.mask)
        assert (mask != initial).any() and mask.sum() == initial.sum()
        np.testing.assert_array_equal(mask, to_numpy(layer_b.mask), err_msg=layer_a.name)
        assert np.all(to_numpy(layer_a.kernel)[mask == 0] == 0)
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)
