"""`sparsify` and `strip` on the models people fine-tune: subclassed, attention, keras-hub, keras.applications."""

import json
import os
import subprocess
import sys
import warnings
import zipfile

import keras
import numpy as np
import pytest

import keras_er
from keras_er import masks
from keras_er.layers.in_place import is_matrix
from tests.helpers import to_numpy

keras_hub = pytest.importorskip("keras_hub")


@keras.saving.register_keras_serializable(package="keras_er_tests")
class TwoDense(keras.layers.Layer):
    """A user's layer holding its own Dense sublayers (one without a bias)."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units, activation="relu", name="inner")
        self.outer = keras.layers.Dense(units, use_bias=False, name="outer")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer.build((*input_shape[:-1], self.units))

    def call(self, x):
        return self.outer(self.inner(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_er_tests")
class TokenClassifier(keras.Model):
    def __init__(self, vocabulary=60, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = vocabulary
        self.embedding = keras.layers.Embedding(vocabulary, 16)
        self.block = TwoDense(16)
        self.head = keras.layers.Dense(3, name="head")

    def build(self, input_shape):  # what `.keras` loading (and `strip`) rebuild the model with
        self.embedding.build(input_shape)
        self.block.build((*input_shape, 16))
        self.head.build((input_shape[0], 16))

    def call(self, tokens):
        return self.head(keras.ops.mean(self.block(self.embedding(tokens)), axis=1))

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary}


def tokens(rng, n=8):
    return rng.integers(0, 60, size=(n, 6)).astype("int32")


def subclassed():
    model = TokenClassifier()
    model(tokens(np.random.default_rng(0)))
    return model, tokens


def attention_block():
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(2, 8)(inputs, inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs), lambda rng, n=8: rng.normal(size=(n, 6, 16)).astype("float32")


def bert_classifier():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=8
    )
    names = ("token_ids", "segment_ids", "padding_mask")
    inputs = {name: keras.Input((8,), dtype="int32", name=name) for name in names}
    outputs = keras.layers.Dense(3)(backbone(inputs)["pooled_output"])

    def data(rng, n=8):
        return {
            "token_ids": rng.integers(0, 60, (n, 8)),
            "segment_ids": np.zeros((n, 8)),
            "padding_mask": np.ones((n, 8)),
        }

    return keras.Model(inputs, outputs), data


def vit():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    return backbone, lambda rng, n=8: rng.uniform(size=(n, 16, 16, 3)).astype("float32")


def mobilenet():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=3)
    return model, lambda rng, n=8: rng.uniform(size=(n, 32, 32, 3)).astype("float32")


MODELS = {
    "subclassed": subclassed,
    "attention": attention_block,
    "bert": bert_classifier,
    "vit": vit,
    "mobilenet_v2": mobilenet,
}
# What sparsify cannot mask, by design: keras-hub's learned position table and ViT's class token.
LEFT_DENSE = {"bert": {"embeddings"}, "vit": {"class_token", "embeddings"}}


def matrices(model):
    return [w for w in model.trainable_weights if is_matrix(w)]


def sparse(name, density=0.1, seed=0):
    model, data = MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model, keras_er.sparsify(model, density=density, seed=seed), data


@pytest.mark.parametrize("name", MODELS)
def test_every_kernel_is_masked_to_the_density_and_the_rest_is_counted(name):
    _, model, _ = sparse(name)
    layers = masks.masked_layers(model)
    kept = sum(int(to_numpy(layer.mask).sum()) for layer in layers)
    size = sum(int(np.prod(layer.kernel_variable.shape)) for layer in layers)
    assert abs(kept / size - 0.1) <= len(layers) / size  # exact sampling: one weight per layer at most
    for layer in layers:
        mask = to_numpy(layer.mask)
        assert (to_numpy(layer.kernel_variable)[mask == 0] == 0).all(), layer.path
    report = masks.summary(model, print_fn=None)
    assert report["size"] == sum(int(np.prod(w.shape)) for w in matrices(model)), "every trainable matrix counted"
    dense = {row["name"] for row in report["layers"] if not row["masked"]}
    left = {w.name for w in matrices(model)} - {w.name for layer in layers for w in [layer.kernel_variable]}
    assert left <= LEFT_DENSE.get(name, set()) | {"depthwise_kernel"}, dense


# MobileNetV2's layer types (Conv2D, DepthwiseConv2D, Dense) train masked in tests/layers; its graph is the
# slowest to compile here, so its training run is in the slow set.
TRAINED = [name if name != "mobilenet_v2" else pytest.param(name, marks=pytest.mark.slow) for name in MODELS]


@pytest.mark.parametrize("name", TRAINED)
def test_masked_weights_stay_zero_through_training(name):
    _, model, data = sparse(name)
    rng = np.random.default_rng(1)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=keras.losses.MeanSquaredError())
    x = data(rng)
    target = to_numpy(model(x, training=False))
    model.fit(x, target + 1.0, epochs=2, batch_size=4, verbose=0)
    for layer in masks.masked_layers(model):
        mask = to_numpy(layer.mask)
        assert (to_numpy(layer.kernel_variable)[mask == 0] == 0).all(), layer.path
    assert np.abs(to_numpy(model(x, training=False)) - target).max() > 0, "the model trained"


@pytest.mark.parametrize("name", ["subclassed", "attention", "bert"])
def test_density_1_keeps_the_outputs(name):
    model, data = MODELS[name]()
    x = data(np.random.default_rng(2))
    before = to_numpy(model(x, training=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        after = to_numpy(keras_er.sparsify(model, density=1.0)(x, training=False))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_a_subclassed_model_is_masked_in_place_and_its_weights_round_trip(tmp_path):
    original, model, data = sparse("subclassed", seed=3)
    assert model is original and type(model.block.inner).__name__ == "InPlaceMaskedDense"
    path = tmp_path / "sparse.weights.h5"
    model.save_weights(path)
    _, other, _ = sparse("subclassed", seed=4)  # other masks, other weights
    other.load_weights(path)
    for first, second in zip(masks.masked_layers(model), masks.masked_layers(other)):
        np.testing.assert_array_equal(to_numpy(first.mask), to_numpy(second.mask))
    x = data(np.random.default_rng(5))
    np.testing.assert_array_equal(to_numpy(other(x)), to_numpy(model(x)))


def embedding_classifier():
    """A Functional model whose top-level Embedding is masked in place (keras_er has no masked Embedding)."""
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(60, 16)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(x)), tokens


ROUND_TRIP = {**{name: MODELS[name] for name in ("subclassed", "attention", "bert")}, "embedding": embedding_classifier}


def assert_same_masks_and_zeros(saved, loaded):
    first, second = masks.masked_layers(saved), masks.masked_layers(loaded)
    assert [type(layer).__name__ for layer in first] == [type(layer).__name__ for layer in second]
    for a, b in zip(first, second):
        assert b.mask.dtype == "uint8"
        np.testing.assert_array_equal(to_numpy(b.mask), to_numpy(a.mask), err_msg=a.path)
        np.testing.assert_array_equal(to_numpy(b.kernel_variable), to_numpy(a.kernel_variable), err_msg=a.path)
        assert (to_numpy(b.kernel_variable)[to_numpy(b.mask) == 0] == 0).all(), b.path


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_a_keras_file_of_a_model_masked_in_place_loads_with_its_masks(tmp_path, name):
    model, data = ROUND_TRIP[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = keras_er.sparsify(model, density=0.2, seed=1)
    x = data(np.random.default_rng(7), n=2)
    model.save(tmp_path / "sparse.keras")
    loaded = keras.saving.load_model(tmp_path / "sparse.keras")
    np.testing.assert_array_equal(to_numpy(loaded(x, training=False)), to_numpy(model(x, training=False)))
    assert_same_masks_and_zeros(model, loaded)
    loaded.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.MeanSquaredError())
    loaded.fit(x, to_numpy(model(x, training=False)) + 1.0, epochs=1, verbose=0)
    for layer in masks.masked_layers(loaded):  # the reloaded masks hold in training
        assert (to_numpy(layer.kernel_variable)[to_numpy(layer.mask) == 0] == 0).all(), layer.path


FRESH_LOAD = """
import sys, numpy as np, keras
import keras_er.layers
{classes}
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[2], keras.ops.convert_to_numpy(model(np.load(sys.argv[3]), training=False)))
np.savez(sys.argv[4], *[keras.ops.convert_to_numpy(layer.mask) for layer in keras_er.masks.masked_layers(model)])
"""


def test_a_fresh_process_loads_a_subclassed_model_masked_in_place(tmp_path):
    _, model, data = sparse("subclassed", seed=2)
    x = data(np.random.default_rng(8), n=2)
    model.save(tmp_path / "sparse.keras")
    np.save(tmp_path / "x.npy", x)
    files = [str(tmp_path / name) for name in ("sparse.keras", "y.npy", "x.npy", "masks.npz")]
    script = FRESH_LOAD.format(classes=_user_classes_source())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script, *files], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), to_numpy(model(x, training=False)))
    with np.load(tmp_path / "masks.npz") as loaded:
        stored = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    expected = [to_numpy(layer.mask) for layer in masks.masked_layers(model)]
    assert len(stored) == len(expected) == 4
    for a, b in zip(stored, expected):
        np.testing.assert_array_equal(a, b)


def test_a_keras_file_whose_masked_layers_do_not_match_the_model_is_refused(tmp_path):
    _, model, _ = sparse("subclassed")
    model.save(tmp_path / "sparse.keras")
    with zipfile.ZipFile(tmp_path / "sparse.keras") as source, zipfile.ZipFile(tmp_path / "bad.keras", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["masked"][0][1] = "Conv2D"  # where the model has its Embedding
                data = json.dumps(config).encode()
            target.writestr(item, data)
    with pytest.raises(ValueError, match="masked Conv2D at position .* another architecture"):
        keras.saving.load_model(tmp_path / "bad.keras")


def test_popup_is_refused_for_layers_masked_in_place_and_nothing_changes():
    model, _ = subclassed()
    with pytest.raises(ValueError, match="popup=True.*masked in place"):
        keras_er.sparsify(model, density=0.1, popup=True)
    assert type(model.head) is keras.layers.Dense


def test_include_and_exclude_take_paths_patterns_and_classes():
    model, _ = subclassed()
    keras_er.sparsify(model, density=0.5, exclude=[keras.layers.Embedding, "*/outer"])
    assert [layer.name for layer in masks.masked_layers(model)] == ["inner", "head"]
    other, _ = subclassed()
    keras_er.sparsify(other, density=0.5, include=[other.block.inner.path, "he*"])
    assert [layer.name for layer in masks.masked_layers(other)] == ["inner", "head"]


def test_dst_and_pruning_move_masks_of_layers_masked_in_place():
    _, model, data = sparse("attention", density=0.3)
    layers = masks.masked_layers(model)
    before = [to_numpy(layer.mask).copy() for layer in layers]
    update = keras_er.dst.SET(update_every=1, total_steps=100, seed=0)
    update.set_model(model)
    update.update(step=1)
    moved = [to_numpy(layer.mask) for layer in layers]
    assert any((a != b).any() for a, b in zip(before, moved)), "SET moved weights"
    assert [int(a.sum()) for a in before] == [int(b.sum()) for b in moved], "the same counts per layer"
    keras_er.pruning.prune(model, "magnitude", density=0.15)
    for layer in layers:
        mask = to_numpy(layer.mask)
        assert (to_numpy(layer.kernel_variable)[mask == 0] == 0).all()
    assert abs(masks.summary(model, print_fn=None)["global_density"] - 0.15) < 0.01


STRIPPED_LOAD = """
import sys, numpy as np, keras
{imports}
model = keras.saving.load_model(sys.argv[1])
inputs = dict(np.load(sys.argv[3]))
x = inputs["x"] if list(inputs) == ["x"] else inputs
np.save(sys.argv[2], keras.ops.convert_to_numpy(model(x, training=False)))
assert "keras_er" not in sys.modules, "keras_er was imported"
"""


@pytest.mark.parametrize("name", ["subclassed", "attention", "bert"])
def test_strip_gives_plain_keras_that_loads_without_keras_er(tmp_path, name):
    _, model, data = sparse(name)
    plain = keras_er.strip(model)
    x = data(np.random.default_rng(6), n=2)
    expected = to_numpy(model(x, training=False))
    np.testing.assert_allclose(to_numpy(plain(x, training=False)), expected, atol=1e-5)
    assert not [type(layer) for layer in plain._flatten_layers() if type(layer).__module__.startswith("keras_er")]
    plain.save(tmp_path / "plain.keras")
    np.savez(tmp_path / "x.npz", **(x if isinstance(x, dict) else {"x": x}))
    imports = {"bert": "import keras_hub", "subclassed": "from tests.test_conversion_any_model_classes import *"}
    script = STRIPPED_LOAD.format(imports=imports.get(name, ""))
    if name == "subclassed":  # the user's classes, without keras_er: a module of their own
        script = script.replace(imports[name], _user_classes_source())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    files = [str(tmp_path / "plain.keras"), str(tmp_path / "y.npy"), str(tmp_path / "x.npz")]
    done = subprocess.run([sys.executable, "-c", script, *files], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def _user_classes_source():
    import inspect

    return "\n\n".join(inspect.getsource(cls) for cls in (TwoDense, TokenClassifier))


def _functional_holding_a_vit():
    vit = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(vit(inputs)[:, 0]))


def test_a_model_keras_cannot_copy_is_refused_and_in_place_masks_it():
    """keras-hub's ViTPatchingAndEmbedding writes config keys its own constructor rejects: no copy is possible."""
    model = _functional_holding_a_vit()
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    before = to_numpy(model(x))
    with pytest.raises(ValueError, match=r"cannot rebuild its layer 'vit_patching_and_embedding'.*in_place=True"):
        keras_er.sparsify(model, density=0.2)
    np.testing.assert_array_equal(to_numpy(model(x)), before)  # the refusal changed nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the position embedding and class token stay dense
        sparse = keras_er.sparsify(model, density=0.2, in_place=True)
    assert sparse is model
    masked = masks.summary(model, print_fn=None)
    assert len(masked["layers"]) >= 7 and masked["global_density"] == pytest.approx(0.2, abs=0.01)
    assert not np.array_equal(to_numpy(model(x)), before)
    with pytest.raises(TypeError, match="`in_place` must be True or False"):
        keras_er.sparsify(_functional_holding_a_vit(), in_place="yes")
