"""The custom-layer route: a user's own layer made prunable (tfmot's PrunableLayer), with and without a bias."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_er
from keras_er import replacements
from keras_er.layers import MaskedLayer
from tests.helpers import to_numpy


@keras.saving.register_keras_serializable(package="keras_er_tests")
class Linear(keras.layers.Layer):
    """A user's layer with its own kernel (and optional bias): nothing keras_er knows."""

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = units, use_bias

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.kernel)
        return outputs + self.bias if self.use_bias else outputs

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="keras_er_tests")
class MaskedLinear(MaskedLayer):
    """Its masked version: MaskedLayer's kernel, mask and bias; `effective_kernel()` in `call`."""

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(use_bias=use_bias, **kwargs)
        self.units = units

    def build(self, input_shape):
        self._add_kernel((input_shape[-1], self.units), fan_in=input_shape[-1])
        self._add_bias(self.units)

    def call(self, inputs):
        return self._apply_bias_and_activation(ops.matmul(inputs, self.effective_kernel()))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Block(keras.layers.Layer):
    """A user's layer holding Keras layers: sparsify masks them in place, with no code of the user's."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(16, activation="relu", name="inner")
        self.outer = keras.layers.Dense(8, use_bias=False, name="outer")

    def call(self, inputs):
        return self.outer(self.inner(inputs))


@pytest.fixture
def registered():
    replacements.register_replacement(Linear, MaskedLinear)
    yield
    replacements.unregister_replacement(Linear)


def model_with_linear(use_bias):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    x = keras.layers.Dense(24, activation="relu", name="dense")(inputs)
    return keras.Model(inputs, Linear(6, use_bias=use_bias, name="linear")(x))


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 12)).astype("float32"), rng.normal(size=(32, 6)).astype("float32")


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_sparsify_replaces_a_registered_layer_and_copies_its_weights(registered, use_bias):
    model = model_with_linear(use_bias)
    x, _ = data()
    sparse = keras_er.sparsify(model, density=0.5, scheme="uniform", seed=0)
    layer = sparse.get_layer("linear")
    assert type(layer) is MaskedLinear and (layer.bias is not None) == use_bias
    assert sorted(w.name for w in layer.weights) == (["bias", "kernel", "mask"] if use_bias else ["kernel", "mask"])
    mask = to_numpy(layer.mask).astype(bool)
    assert mask.sum() == 72  # exactly half of 24 x 6
    original = model.get_layer("linear")
    np.testing.assert_array_equal(to_numpy(layer.kernel), to_numpy(original.kernel) * mask)
    full = keras_er.sparsify(model, density=1.0)
    np.testing.assert_allclose(to_numpy(full.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)), atol=1e-6)


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_masked_weights_stay_zero_through_training_and_pruning(registered, use_bias):
    sparse = keras_er.sparsify(model_with_linear(use_bias), density=0.5, seed=0)
    x, y = data()
    sparse.compile(keras.optimizers.Adam(0.01), "mse")
    pruning = keras_er.pruning.GradualPruning(0.5, 0.2, begin_step=0, end_step=4, frequency=2)
    sparse.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[pruning])
    table = keras_er.masks.summary(sparse, print_fn=None)
    assert table["nonzeros"] == round(0.2 * table["size"])
    layer = sparse.get_layer("linear")
    mask = to_numpy(layer.mask).astype(bool)
    kernel = to_numpy(layer.kernel)
    assert not kernel[~mask].any() and np.count_nonzero(kernel[mask]) == mask.sum()
    if use_bias:
        assert np.abs(to_numpy(layer.bias)).sum() > 0  # the bias trains and is never masked


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_keras_file_round_trip_and_strip_to_the_plain_layer(registered, use_bias, tmp_path):
    sparse = keras_er.sparsify(model_with_linear(use_bias), density=0.3, seed=1)
    x, _ = data()
    expected = to_numpy(sparse.predict(x, verbose=0))
    sparse.save(tmp_path / "sparse.keras")
    loaded = keras.saving.load_model(tmp_path / "sparse.keras")
    np.testing.assert_array_equal(to_numpy(loaded.get_layer("linear").mask), to_numpy(sparse.get_layer("linear").mask))
    np.testing.assert_allclose(to_numpy(loaded.predict(x, verbose=0)), expected, atol=1e-6)

    plain = keras_er.strip(sparse)
    layer = plain.get_layer("linear")
    assert type(layer) is Linear and layer.use_bias == use_bias
    assert len(layer.weights) == (2 if use_bias else 1)
    np.testing.assert_array_equal(to_numpy(layer.kernel), to_numpy(sparse.get_layer("linear").effective_kernel()))
    np.testing.assert_allclose(to_numpy(plain.predict(x, verbose=0)), expected, atol=1e-6)
    plain.save(tmp_path / "plain.keras")
    np.testing.assert_allclose(
        to_numpy(keras.saving.load_model(tmp_path / "plain.keras").predict(x, verbose=0)), expected, atol=1e-6
    )


def test_strip_refuses_to_drop_a_setting_the_plain_layer_lacks(registered):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, MaskedLinear(3, activation="relu", density=0.5, seed=0, name="linear")(inputs))
    with pytest.raises(ValueError, match="Linear does not take"):
        keras_er.strip(model)


def test_strip_of_an_unregistered_masked_layer_says_how_to_register_it():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, MaskedLinear(3, density=0.5, seed=0)(inputs))
    with pytest.raises(TypeError, match="register_replacement"):
        keras_er.strip(model)


def test_a_layer_holding_keras_layers_is_masked_in_place_without_registration():
    inputs = keras.Input((12,))
    model = keras.Model(inputs, Block(name="block")(inputs))
    sparse = keras_er.sparsify(model, density=0.25, scheme="uniform", seed=0)
    rows = keras_er.masks.summary(sparse, print_fn=None)["layers"]
    assert [(row["name"], row["nonzeros"]) for row in rows] == [("block/inner", 48), ("block/outer", 32)]
    x, _ = data()
    sparse.compile("sgd", "mse")
    sparse.fit(x, np.zeros((32, 8)), verbose=0)
    for layer in keras_er.masks.masked_layers(sparse):
        assert not to_numpy(layer.kernel_variable)[~layer.active_mask()].any()
