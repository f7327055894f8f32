import keras
import numpy as np
import pytest

import keras_er
from keras_er import data
from keras_er import training
from keras_er.data import sources
from keras_er.masks import masked_layers
from keras_er.training.recipe import Recipe
from tests.helpers import StopAt
from tests.helpers import masked_cnn
from tests.helpers import masked_weights
from tests.helpers import synthetic_batches
from tests.helpers import to_numpy


def synthetic():
    return synthetic_batches(n=64, batch_size=16)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    recipe = Recipe(epochs=3, warmup_epochs=1, learning_rate=0.05)
    reference = masked_cnn(seed=0)
    start = [to_numpy(w) for w in reference.weights]
    training.fit(reference, synthetic(), recipe, out_dir=tmp_path / "a", verbose=0)

    interrupted = masked_cnn(seed=0)
    for w, value in zip(interrupted.weights, start):
        w.assign(value)
    with pytest.raises(KeyboardInterrupt):
        training.fit(interrupted, synthetic(), recipe, out_dir=tmp_path / "b", verbose=0, callbacks=[StopAt(2)])
    resumed = masked_cnn(seed=7)  # a fresh process would build new random weights
    history = training.fit(resumed, synthetic(), recipe, out_dir=tmp_path / "b", resume=True, verbose=0)
    assert len(history.history["loss"]) == 1  # only epoch 3 ran
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    recipe = Recipe(epochs=1, warmup_epochs=0)
    training.fit(masked_cnn(), synthetic(), recipe, out_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="already holds a run"):
        training.fit(masked_cnn(), synthetic(), recipe, out_dir=tmp_path, verbose=0)
    assert (tmp_path / "log.csv").read_text().count("\n") == 2


def test_weight_decay_applies_to_kernels_only():
    optimizer = Recipe().optimizer(10)
    model = masked_cnn(popup=False)
    optimizer.build(model.trainable_variables)
    decayed = {v.name for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"kernel"}


def test_popup_training_decays_and_trains_only_scores(tmp_path):
    model = masked_cnn(popup=True, density=0.8)
    kernels = [to_numpy(layer.kernel) for layer in masked_layers(model)]
    recipe = Recipe(epochs=1, warmup_epochs=0)
    training.fit(model, synthetic(), recipe, out_dir=tmp_path, verbose=0)
    optimizer = model.optimizer
    assert {v.name for v in model.trainable_variables if optimizer._use_weight_decay(v)} == {"scores"}
    for layer, kernel in zip(masked_layers(model), kernels):
        np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)


def test_popup_model_reloaded_from_keras_file_still_trains_only_scores(tmp_path):
    popup_cnn = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    popup_cnn = keras_er.sparsify(popup_cnn, density=0.8, popup=True)
    popup_cnn.save(tmp_path / "popup.keras")
    reloaded = keras.saving.load_model(tmp_path / "popup.keras")
    bn = reloaded.layers[1]
    assert bn.gamma.trainable, "precondition: .keras files do not keep per-variable flags"
    training.fit(reloaded, synthetic(), Recipe(epochs=1, warmup_epochs=0), verbose=0)
    np.testing.assert_array_equal(to_numpy(bn.gamma), 1.0)
    np.testing.assert_array_equal(to_numpy(bn.beta), 0.0)
    assert np.any(to_numpy(bn.moving_mean) != 0.0), "BN statistics still update"


def test_schedule_warms_up_then_decays_to_zero():
    schedule = Recipe(epochs=4, warmup_epochs=1, learning_rate=0.1).schedule(10)
    lr = lambda step: float(schedule(step))
    assert lr(0) == 0.0 and lr(10) == pytest.approx(0.1)
    assert lr(25) == pytest.approx(0.05, abs=1e-6) and lr(40) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "`epochs`"),
        ({"warmup_epochs": 30}, "`warmup_epochs`"),
        ({"learning_rate": -1}, "`learning_rate`"),
        ({"batch_size": 1.5}, "`batch_size`"),
        ({"label_smoothing": 1.0}, "`label_smoothing`"),
    ],
)
def test_bad_recipes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


@pytest.mark.skipif(
    not sources.DEBIAN_FASHION_MNIST.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_a_sparse_model_learns_real_fashion_mnist_and_stays_sparse():
    from keras_er.layers import MaskedConv2D
    from keras_er.layers import MaskedDense

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            MaskedConv2D(16, 3, strides=2, activation="relu", density=0.3, seed=0),
            MaskedConv2D(32, 3, strides=2, activation="relu", density=0.3, seed=1),
            keras.layers.GlobalAveragePooling2D(),
            MaskedDense(10, density=0.5, seed=2),
        ]
    )
    train = data.load("fashion_mnist", "train", batch_size=64, limit=2048, normalize=True)  # a bare network
    recipe = Recipe(epochs=1, warmup_epochs=0, learning_rate=0.05)
    training.fit(model, train, recipe, verbose=0)  # compiles with the recipe
    x, y = data.load("fashion_mnist", "test", as_numpy=True, limit=1000, normalize=True)
    before = masked_weights(model)
    loss_after_1 = model.evaluate(x, y, verbose=0)[0]
    training.fit(model, train, Recipe(epochs=2, warmup_epochs=0, learning_rate=0.05), verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < loss_after_1 < np.log(10)
    for name, (kernel, mask) in masked_weights(model).items():
        np.testing.assert_array_equal(mask, before[name][1])
        assert np.all(kernel[mask == 0] == 0)


def test_label_smoothing_matches_the_formula():
    logits = np.array([[2.0, 0.0, -1.0]], "float32")
    smoothed = Recipe(label_smoothing=0.3).loss()(np.array([0]), logits)
    target = np.array([0.8, 0.1, 0.1])
    log_softmax = logits[0] - np.log(np.exp(logits[0]).sum())
    expected = -(target * log_softmax).sum()
    assert float(keras.ops.mean(smoothed)) == pytest.approx(expected, rel=1e-5)
    plain = Recipe().loss()(np.array([0]), logits)
    assert float(plain) == pytest.approx(-log_softmax[0], rel=1e-5)


def test_compile_options_reach_compile_and_default_to_keras():
    from keras_er.training.loop import compile_for_training

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tiny")
    compile_for_training(model, Recipe(epochs=2), steps_per_epoch=10, options={"run_eagerly": True})
    assert model.run_eagerly
    compile_for_training(model, Recipe(epochs=2), steps_per_epoch=10)
    assert not model.run_eagerly
