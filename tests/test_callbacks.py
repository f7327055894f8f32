"""MaskSummaries: the masks' densities in the epoch logs, as masks.summary counts them, on every backend."""

import csv

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import MaskSummaries
from keras_er.layers import MaskedDense
from keras_er.pruning import GradualPruning
from tests.helpers import images
from tests.helpers import masked_cnn


def small_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


class TwoLayers(keras.Model):
    """A subclassed model: sparsify masks its Dense layers in place."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu", name="hidden")
        self.head = keras.layers.Dense(4, name="head")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


class SummaryAtEpochEnd(keras.callbacks.Callback):
    """masks.summary's densities after each epoch, keyed as MaskSummaries keys them."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        table = keras_er.masks.summary(self.model, print_fn=None)
        row = {f"density/{self.inner(r['name'])}": r["density"] for r in table["layers"] if r["masked"]}
        self.epochs.append({**row, "global_density": table["global_density"]})

    def inner(self, path):  # a Sequential's (or subclassed model's) layer paths start with the model's name
        return path.removeprefix(f"{self.model.name}/")


def fit(model, callbacks, epochs=1, steps=2):
    x, y = images(n=8 * steps)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks).history


def logged(history, keys=("density/", "global_density")):
    return {key: values for key, values in history.items() if key.startswith(keys)}


def test_a_cloned_sparse_model_logs_what_summary_counts():
    model = keras_er.sparsify(small_cnn(), density=0.3, scheme="erk", seed=0)
    check = SummaryAtEpochEnd()
    history = fit(model, [MaskSummaries(), check])
    assert list(logged(history)) == ["density/conv", "density/hidden", "density/head", "global_density"]
    assert {key: values[-1] for key, values in logged(history).items()} == check.epochs[-1]
    assert history["global_density"] == [pytest.approx(0.3, abs=2e-3)]
    assert all(isinstance(values[-1], float) for values in logged(history).values())


def test_a_model_masked_in_place_logs_its_layers():
    model = TwoLayers()
    model(np.zeros((1, 12 * 12), "float32"))
    assert keras_er.sparsify(model, density=0.25, scheme="uniform", seed=0) is model  # in place
    x = np.random.default_rng(0).normal(size=(8, 144)).astype("float32")
    model.compile("sgd", "mse")
    history = model.fit(x, np.zeros((8, 4)), verbose=0, callbacks=[MaskSummaries()]).history
    assert logged(history) == {"density/hidden": [0.25], "density/head": [0.25], "global_density": [0.25]}


def test_densities_follow_gradual_pruning_epoch_by_epoch():
    # 2 steps an epoch; pruning from dense to 0.2 over steps 0..8, every 2 steps: a new density each epoch.
    model = keras_er.sparsify(small_cnn(), density=1.0)
    check = SummaryAtEpochEnd()
    pruning = GradualPruning(1.0, 0.2, begin_step=0, end_step=8, frequency=2)
    history = fit(model, [pruning, MaskSummaries(), check], epochs=4)
    assert [{key: values[i] for key, values in logged(history).items()} for i in range(4)] == check.epochs
    densities = history["global_density"]
    assert densities == sorted(densities, reverse=True) and len(set(densities)) == 4
    assert densities[-1] == pytest.approx(0.2, abs=2e-3)
    assert history["density"] == pytest.approx(densities)  # GradualPruning's own key: every layer is masked
    per_layer = [history[f"density/{name}"] for name in ("conv", "hidden", "head")]
    assert any(values[0] > values[-1] for values in per_layer)


def test_popup_density_counts_the_top_k_of_the_scores():
    model = masked_cnn(popup=True, density=0.5, popup_density=0.5)
    history = fit(model, [MaskSummaries()])
    table = keras_er.masks.summary(model, print_fn=None)
    assert history["global_density"] == [table["global_density"]]
    assert history["global_density"][0] == pytest.approx(0.25, abs=0.02)


def test_dense_weights_left_out_count_in_the_global_density_only():
    model = keras_er.sparsify(small_cnn(), density=0.5, scheme="uniform", exclude=["head"])
    history = fit(model, [MaskSummaries()])
    assert "density/head" not in history  # not masked
    table = keras_er.masks.summary(model, print_fn=None)
    assert history["global_density"] == [table["global_density"]] and table["global_density"] > 0.5


def test_csv_logger_listed_after_it_records_the_densities(tmp_path):
    path = tmp_path / "log.csv"
    model = keras_er.sparsify(small_cnn(), density=0.3, seed=0)
    history = fit(model, [MaskSummaries(), keras.callbacks.CSVLogger(str(path))], epochs=2)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2
    assert [float(row["density/hidden"]) for row in rows] == pytest.approx(history["density/hidden"])
    assert [float(row["global_density"]) for row in rows] == pytest.approx(history["global_density"])


def test_tensorboard_listed_after_it_writes_the_densities(tmp_path):
    tf = pytest.importorskip("tensorflow")  # Keras' TensorBoard writes with tf.summary on every backend
    pytest.importorskip("tensorboard")
    model = keras_er.sparsify(small_cnn(), density=0.3, seed=0)
    history = fit(model, [MaskSummaries(), keras.callbacks.TensorBoard(str(tmp_path), write_graph=False)], epochs=1)
    written = {}
    for event_file in (tmp_path / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    written[value.tag] = float(tf.make_ndarray(value.tensor))
    assert written["epoch_density/conv"] == pytest.approx(history["density/conv"][0])
    assert written["epoch_global_density"] == pytest.approx(history["global_density"][0])


def test_options_choose_the_keys():
    model = keras_er.sparsify(small_cnn(), density=0.3, seed=0)
    history = fit(model, [MaskSummaries(prefix="sparsity_of_", global_key=None)])
    assert list(logged(history, ("sparsity_of_", "global"))) == [
        "sparsity_of_conv",
        "sparsity_of_hidden",
        "sparsity_of_head",
    ]
    history = fit(model, [MaskSummaries(layers=False, global_key="model_density")])
    assert list(logged(history, ("density/", "model_density"))) == ["model_density"]


def test_nested_models_with_the_same_layer_names_get_distinct_keys():
    # Keras names a Functional model's layers without the model's name, so two copies of one
    # architecture share names; the later layer's key gets a suffix, and no density is lost.
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Add()([small_cnn()(inputs), small_cnn()(inputs)])
    model = keras_er.sparsify(keras.Model(inputs, outputs), density=0.5, scheme="uniform")
    history = fit(model, [MaskSummaries()])
    names = ("conv", "hidden", "head")
    assert list(logged(history)) == [f"density/{n}" for n in names] + [f"density/{n}_1" for n in names] + [
        "global_density"
    ]
    assert all(values == [0.5] for values in logged(history).values())


def test_a_model_without_masks_is_refused_before_training():
    with pytest.raises(ValueError, match="no keras_er masked layers"):
        fit(small_cnn(), [MaskSummaries()])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"prefix": 3}, TypeError, "`prefix`"),
        ({"global_key": ""}, TypeError, "`global_key`"),
        ({"layers": "yes"}, TypeError, "`layers`"),
        ({"global_key": None, "layers": False}, ValueError, "nothing to log"),
        ({"global_key": "density/all"}, ValueError, "starts with `prefix`"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        MaskSummaries(**kwargs)


def test_a_layer_masked_by_its_own_density_is_logged():
    model = keras.Sequential([keras.Input((4,)), MaskedDense(8, density=0.5, seed=0, name="only")])
    model.compile("sgd", "mse")
    history = model.fit(np.ones((4, 4)), np.ones((4, 8)), verbose=0, callbacks=[MaskSummaries()]).history
    assert logged(history) == {"density/only": [0.5], "global_density": [0.5]}
