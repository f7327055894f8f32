"""SET and RigL inside `model.fit` on the current backend: schedule, exact counts, zeros, slots, errors."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import dst
from keras_er.backend_helpers import loss_gradients
from keras_er.backend_helpers import sync_training_state
from keras_er.dst import updates
from keras_er.layers import MaskedDense
from keras_er.masks import masked_layers
from tests.helpers import images
from tests.helpers import masked_cnn
from tests.helpers import to_numpy

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.01),
}


def kernel_slots(optimizer, variable):
    """The optimizer's slots (momentum, moments) for `variable`, by Keras' naming."""
    prefix = variable.path.replace("/", "_") + "_"
    return [s for s in optimizer.variables if s.name.startswith(prefix) and tuple(s.shape) == tuple(variable.shape)]


def masks_of(model):
    return [to_numpy(layer.mask).astype(bool) for layer in masked_layers(model)]


class CheckEachUpdate(keras.callbacks.Callback):
    """Runs after the DST callback: right after each update, grown weights and their slots are zero."""

    def __init__(self, method):
        super().__init__()
        self.method = method
        self.grown = []  # per update, per layer: the grown positions
        self.problems = []

    def on_train_begin(self, logs=None):
        self.masks = masks_of(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if len(self.method.history) == len(self.grown):
            return
        sync_training_state(self.model)
        record = self.method.history[-1]
        step = int(to_numpy(self.model.optimizer.iterations))
        if record["step"] != step:
            self.problems.append(f"update recorded at step {record['step']}, optimizer at {step}")
        grown_now = []
        for layer, old in zip(masked_layers(self.model), self.masks):
            new = to_numpy(layer.mask).astype(bool)
            kernel = to_numpy(layer.kernel)
            grown, dropped = new & ~old, old & ~new
            grown_now.append(grown)
            counts = record["layers"][layer.name]
            if new.sum() != old.sum() or grown.sum() != counts["grown"] or dropped.sum() != counts["dropped"]:
                self.problems.append(f"{layer.name}: counts {old.sum()} -> {new.sum()}, record {counts}")
            if np.any(kernel[~new] != 0):
                self.problems.append(f"{layer.name}: nonzero kernel outside the mask at step {step}")
            slots = kernel_slots(self.model.optimizer, layer.kernel)
            if not slots:
                self.problems.append(f"{layer.name}: no optimizer slots found")
            for slot in slots:
                if np.any(to_numpy(slot)[~new] != 0) or np.any(to_numpy(slot)[grown] != 0):
                    self.problems.append(f"{layer.name}: slot {slot.name} nonzero at grown/masked positions")
        self.masks = masks_of(self.model)
        self.grown.append(grown_now)


def make_method(name, x, y, **kwargs):
    kwargs = {"update_every": 2, "drop_fraction": 0.5, "end_fraction": 1.0, "seed": 0, **kwargs}
    if name == "rigl":
        return dst.RigL(data=(x[:8], y[:8]), **kwargs)
    return dst.SET(**kwargs)


def train(method_name, optimizer_name, seed=0, start=None, **kwargs):
    x, y = images(n=32)
    model = masked_cnn(seed=0)
    if start is not None:
        for weight, value in zip(model.weights, start):
            weight.assign(value)
    model.compile(OPTIMIZERS[optimizer_name](), LOSS)
    method = make_method(method_name, x, y, seed=seed, **kwargs)
    check = CheckEachUpdate(method)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, callbacks=[method, check], verbose=0)
    return model, method, check


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
@pytest.mark.parametrize("method_name", ["set", "rigl"])
def test_masks_move_at_update_steps_and_stay_exact(method_name, optimizer_name):
    x, y = images(n=32)
    initial_model = masked_cnn(seed=0)
    initial = masks_of(initial_model)
    model, method, check = train(method_name, optimizer_name, start=[to_numpy(w) for w in initial_model.weights])
    # 8 steps; updates at every 2nd one before the end.
    assert [record["step"] for record in method.history] == [2, 4, 6]
    assert not check.problems, check.problems
    final = masks_of(model)
    for layer, before, after in zip(masked_layers(model), initial, final):
        assert after.sum() == before.sum(), layer.name  # the scheme's per-layer count
        assert (after != before).any(), layer.name
        kernel = to_numpy(layer.kernel)
        assert np.all(kernel[~after] == 0), layer.name
    np.testing.assert_array_equal(check.masks[0], final[0])  # the last update's masks survived the epoch end
    # Grown weights (zero when grown) were trained afterwards: the new masks took effect in the train step.
    first_grown = [grown & mask for grown, mask in zip(check.grown[0], final)]
    kernels = [to_numpy(layer.kernel) for layer in masked_layers(model)]
    assert any(np.any(kernel[grown] != 0) for kernel, grown in zip(kernels, first_grown))
    assert method.history[0]["fraction"] == pytest.approx(0.25 * (1 + np.cos(np.pi * 2 / 8)))


def test_set_with_the_same_seed_gives_the_same_masks():
    start = [to_numpy(w) for w in masked_cnn(seed=0).weights]
    first, _, _ = train("set", "sgd_momentum", seed=5, start=start)
    again, _, _ = train("set", "sgd_momentum", seed=5, start=start)
    other, _, _ = train("set", "sgd_momentum", seed=6, start=start)
    for a, b in zip(masks_of(first), masks_of(again)):
        np.testing.assert_array_equal(a, b)
    assert any((a != c).any() for a, c in zip(masks_of(first), masks_of(other)))


def _mlp(density=None, name="mlp"):
    return keras.Sequential(
        [
            keras.Input((6,)),
            MaskedDense(12, activation="relu", density=density, seed=0, name="hidden"),
            MaskedDense(3, density=density, seed=1, name="logits"),
        ],
        name=name,
    )


def test_rigl_grows_where_the_dense_gradient_is_largest():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype("float32"), rng.integers(0, 3, 16)
    sparse = _mlp(density=0.4)
    sparse.compile(keras.optimizers.Adam(0.01), LOSS)
    dense = _mlp(density=None, name="dense")  # the same weights, every position live: its gradient is the dense one
    for a, b in zip(dense.weights, sparse.weights):
        if a.name != "mask":
            a.assign(b)
    expected_gradients = loss_gradients(dense, x, y, [layer.kernel for layer in masked_layers(dense)], loss=LOSS)
    before = masks_of(sparse)
    kernels = [to_numpy(layer.kernel) for layer in masked_layers(sparse)]
    method = dst.RigL(drop_fraction=0.5, total_steps=100, data=(x, y))
    method.set_model(sparse)
    record = method.update(step=0)
    for layer, old, kernel, gradient in zip(masked_layers(sparse), before, kernels, expected_gradients):
        k = record["layers"][layer.name]["grown"]
        assert k == round(0.5 * old.sum()) and k > 0
        expected = updates.drop_and_grow(kernel, old, np.abs(gradient), k).mask
        np.testing.assert_array_equal(to_numpy(layer.mask).astype(bool), expected, err_msg=layer.name)


def test_a_manual_update_outside_fit_needs_total_steps():
    model = _mlp(density=0.5)
    model.compile("sgd", LOSS)
    method = dst.SET()
    method.set_model(model)
    with pytest.raises(ValueError, match="total_steps"):
        method.update()


def test_an_update_after_the_end_changes_nothing():
    model = _mlp(density=0.5)
    model.compile("sgd", LOSS)
    before = masks_of(model)
    method = dst.SET(total_steps=10)
    method.set_model(model)
    record = method.update(step=8)
    assert record["fraction"] == 0.0
    assert all(item["dropped"] == 0 for item in record["layers"].values())
    for a, b in zip(before, masks_of(model)):
        np.testing.assert_array_equal(a, b)


def test_verbose_prints_one_line_per_update(capsys):
    model = _mlp(density=0.5)
    model.compile("sgd", LOSS)
    method = dst.SET(total_steps=10, verbose=1)
    method.set_model(model)
    method.update(step=1)
    assert capsys.readouterr().out.count("SET step 1: drop fraction") == 1


def test_popup_models_are_refused():
    x, y = images(n=8)
    model = masked_cnn(popup=True)
    model.compile("sgd", LOSS)
    with pytest.raises(ValueError, match="popup"):
        model.fit(x, y, epochs=1, callbacks=[dst.SET(update_every=1)], verbose=0)


def test_a_model_without_masked_layers_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", LOSS)
    with pytest.raises(ValueError, match="no keras_er masked layers"):
        model.fit(np.zeros((4, 4)), np.zeros(4), epochs=1, callbacks=[dst.SET()], verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"update_every": 0}, "`update_every`"),
        ({"update_every": 1.5}, "`update_every`"),
        ({"drop_fraction": 0}, "`drop_fraction`"),
        ({"drop_fraction": 1}, "`drop_fraction`"),
        ({"end_fraction": 0}, "`end_fraction`"),
        ({"end_fraction": 1.01}, "`end_fraction`"),
        ({"seed": -1}, "`seed`"),
        ({"total_steps": 0}, "`total_steps`"),
        ({"verbose": 2}, "`verbose`"),
        ({"data": (1, 2, 3)}, "`data`"),
        ({"data": 5}, "`data`"),
    ],
)
@pytest.mark.parametrize("name", ["set", "rigl"])
def test_bad_arguments_are_named(name, kwargs, match):
    if name == "rigl" and "data" not in kwargs:
        kwargs = {"data": (np.zeros((1, 6)), np.zeros(1)), **kwargs}
    with pytest.raises(ValueError, match=match):
        dst.get(name, **kwargs)


def test_rigl_needs_data():
    with pytest.raises(ValueError, match="`data`"):
        dst.RigL()


def test_the_registry():
    assert dst.method_names()[:2] == ["set", "rigl"]
    assert dst.METHODS["set"] is dst.SET and dst.METHODS["rigl"] is dst.RigL
    assert isinstance(dst.get("set", update_every=3), keras.callbacks.Callback)
    with pytest.raises(ValueError, match="Unknown DST method 'nope' for `method`"):
        dst.get("nope")

    class Largest(dst.DynamicSparseTraining):  # grow where the position index is largest
        def growth_scores(self, layers, step, batch):
            return [np.arange(np.prod(layer.kernel.shape)).reshape(layer.kernel.shape) for layer in layers]

    dst.register_method("largest", Largest)
    try:
        assert "largest" in dst.METHODS
        with pytest.raises(ValueError, match="exists already"):
            dst.register_method("set", Largest)
        model = _mlp(density=0.5)
        method = dst.get("largest", total_steps=10)
        method.set_model(model)
        before = masks_of(model)[1]
        method.update(step=0)
        after = masks_of(model)[1].reshape(-1)
        inactive = np.flatnonzero(~before.reshape(-1))
        grown = np.flatnonzero(after & ~before.reshape(-1))
        np.testing.assert_array_equal(grown, inactive[-len(grown) :])
    finally:
        dst.unregister_method("largest")
    assert "largest" not in dst.METHODS
    with pytest.raises(ValueError, match="lower-case identifier"):
        dst.register_method("Bad Name", Largest)
    assert keras_er.dst is dst
