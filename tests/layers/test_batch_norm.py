import keras
import numpy as np
import pytest

from keras_er import backend_helpers
from keras_er.layers import BatchNormalization
from tests.helpers import to_numpy


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of TensorFlow's fused batch norm."""
    calls = []
    original = backend_helpers.fused_batch_norm

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(backend_helpers, "fused_batch_norm", counted)
    return calls


def trained(layer_class, x, y, steps=2, **kwargs):
    """A conv -> BN model of `layer_class` after `steps` SGD steps (weights seeded)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
            layer_class(momentum=0.8, epsilon=1e-5, **kwargs),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    outputs = to_numpy(model(x, training=True))
    for _ in range(steps):
        model.train_on_batch(x, y)
    return outputs, [to_numpy(w) for w in model.weights]


@pytest.mark.parametrize("kwargs", [{}, {"center": False, "scale": False}])
def test_same_outputs_weights_and_moving_statistics_as_keras(fused_calls, kwargs):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 5, 5, 3)) * 2 + 1).astype("float32")
    y = rng.normal(size=(8, 5, 5, 4)).astype("float32")
    ours = trained(BatchNormalization, x, y, **kwargs)
    assert (len(fused_calls) > 0) == (keras.backend.backend() == "tensorflow")
    theirs = trained(keras.layers.BatchNormalization, x, y, **kwargs)
    np.testing.assert_allclose(ours[0], theirs[0], atol=2e-5)
    assert len(ours[1]) == len(theirs[1])
    for got, expected in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,shape",
    [({"renorm": True}, (4, 3, 3, 2)), ({"axis": 1}, (4, 2, 3, 3)), ({}, (4, 6, 2))],
    ids=["renorm", "channels_first", "3d_input"],
)
def test_cases_the_fused_op_does_not_cover_run_keras_code(fused_calls, kwargs, shape):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    ours, theirs = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    np.testing.assert_allclose(to_numpy(ours(x, training=True)), to_numpy(theirs(x, training=True)), atol=1e-5)
    assert fused_calls == []


def test_without_scale_and_offset_under_another_floatx():
    x = np.random.default_rng(4).normal(size=(2, 2, 2, 3)).astype("float32")
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        kwargs = dict(dtype="float32", center=False, scale=False)
        expected = to_numpy(keras.layers.BatchNormalization(**kwargs)(x, training=True))
        got = to_numpy(BatchNormalization(**kwargs)(x, training=True))
    finally:
        keras.config.set_floatx(previous)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_fused_false_runs_keras_code(fused_calls):
    x = np.random.default_rng(3).normal(size=(4, 3, 3, 2)).astype("float32")
    layer = BatchNormalization()
    layer.fused = False
    expected = keras.layers.BatchNormalization()(x, training=True)
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), to_numpy(expected), atol=1e-6)
    assert fused_calls == []
    assert "fused" not in layer.get_config()


def test_inference_and_frozen_layers_use_the_moving_statistics(fused_calls):
    x = np.random.default_rng(2).normal(size=(4, 3, 3, 2)).astype("float32")
    layer = BatchNormalization()
    layer(x, training=False)
    layer.trainable = False
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), x / np.sqrt(1 + 1e-3), atol=1e-6)
    assert fused_calls == []


def test_serializes_as_a_keras_er_layer():
    layer = BatchNormalization(momentum=0.7, epsilon=1e-4, center=False, name="bn")
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "keras_er>BatchNormalization"
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is BatchNormalization
    assert clone.get_config() == layer.get_config()
