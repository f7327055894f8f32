"""GradualPruning inside model.fit on every backend: Zhu & Gupta's cubic schedule."""

import keras
import numpy as np
import pytest

from keras_er import masks as masks_lib
from keras_er.layers import MaskedDense
from keras_er.pruning import GradualPruning
from keras_er.pruning import cubic_density
from tests.helpers import masked_weights
from tests.helpers import to_numpy

SIZE = 10 * 32 + 32 * 4  # masked weights of `mlp()`


def mlp(density=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            MaskedDense(32, activation="relu", density=density, seed=seed),
            MaskedDense(4, density=density, seed=seed + 1),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 10)).astype("float32"), rng.integers(0, 4, n)


def active(model):
    return sum(int(to_numpy(layer.mask).sum()) for layer in masks_lib.masked_layers(model))


def assert_masked_entries_are_zero(model):
    for name, (kernel, mask) in masked_weights(model).items():
        assert np.all(kernel[mask == 0] == 0), name


def test_cubic_schedule():
    assert cubic_density(0, 1.0, 0.1, 10, 20) == 1.0
    assert cubic_density(10, 1.0, 0.1, 10, 20) == 1.0
    assert cubic_density(15, 1.0, 0.1, 10, 20) == pytest.approx(0.1 + 0.9 * 0.5**3)
    assert cubic_density(20, 1.0, 0.1, 10, 20) == pytest.approx(0.1)
    assert cubic_density(99, 0.5, 0.1, 10, 20) == pytest.approx(0.1)


def test_densities_follow_the_cubic_schedule_inside_fit():
    model = mlp()
    x, y = data()
    pruning = GradualPruning(1.0, 0.2, begin_step=2, end_step=10, frequency=4)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[pruning])  # 16 steps
    assert [u["step"] for u in pruning.updates] == [2, 6, 10]
    for update in pruning.updates:
        target = cubic_density(update["step"], 1.0, 0.2, 2, 10)
        assert update["target"] == pytest.approx(target)
        assert update["density"] * SIZE == min(SIZE, round(target * SIZE))
    assert active(model) == round(0.2 * SIZE)
    assert history.history["density"] == [pytest.approx(update["density"]) for update in pruning.updates[1:]]
    assert_masked_entries_are_zero(model)  # SGD momentum: slots zeroed with the masks


def test_a_second_fit_continues_the_schedule_from_the_optimizer_step_count():
    model = mlp()
    x, y = data()
    first = GradualPruning(1.0, 0.25, begin_step=0, end_step=12, frequency=2, scheme="uniform")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[first])  # steps 1..8
    assert [u["step"] for u in first.updates] == [0, 2, 4, 6, 8]
    second = GradualPruning(1.0, 0.25, begin_step=0, end_step=12, frequency=2, scheme="uniform")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[second])  # steps 9..16
    assert [u["step"] for u in second.updates] == [8, 10, 12]
    assert second.updates[0]["density"] == first.updates[-1]["density"]  # nothing re-pruned at the restart
    counts = [int(to_numpy(layer.mask).sum()) for layer in masks_lib.masked_layers(model)]
    assert counts == [round(0.25 * 320), round(0.25 * 128)]  # tfmot-like: every layer at the same density
    assert_masked_entries_are_zero(model)


def test_from_an_er_start_the_schedule_starts_at_the_model_density():
    model = mlp(density=0.5)
    start = [to_numpy(layer.mask).astype(bool) for layer in masks_lib.masked_layers(model)]
    x, y = data()
    pruning = GradualPruning(None, 0.1, begin_step=0, end_step=8, frequency=4)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning])
    kept = active(model)
    assert [round(u["target"], 6) for u in pruning.updates] == [
        round(cubic_density(t, sum(m.sum() for m in start) / SIZE, 0.1, 0, 8), 6) for t in (0, 4, 8)
    ]
    assert kept == round(0.1 * SIZE)
    for layer, mask in zip(masks_lib.masked_layers(model), start):
        assert not (to_numpy(layer.mask).astype(bool) & ~mask).any()
    assert_masked_entries_are_zero(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(initial_density=0.2, final_density=0.5), "must not exceed"),
        (dict(begin_step=10, end_step=10), "must be greater than"),
        (dict(frequency=0), "positive integer"),
        (dict(method="prune_me"), "Unknown pruning method 'prune_me' for `method`; expected one of: magnitude"),
        (dict(final_density=0.0), r"`final_density` must be in \(0, 1\]"),
        (dict(scheme="nope"), "Unknown scheme .* for `scheme`"),
    ],
)
def test_bad_arguments_are_refused_before_training(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradualPruning(**kwargs)
