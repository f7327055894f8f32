"""keras_er.export: every format each backend writes, verified by its runtime; refusals; nothing half-written."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import deploy
from keras_er.deploy import adapters
from keras_er.deploy import exporting

BACKEND = keras.backend.backend()
WRITABLE = [f for f in deploy.FORMATS if deploy.refusal(f, BACKEND) is None]
REFUSED = [f for f in deploy.FORMATS if deploy.refusal(f, BACKEND) is not None]
NAMES = {"litert": "model.tflite", "onnx": "model.onnx", "tf_saved_model": "saved"}


def sparse_cnn():
    """A tiny sparsified Functional CNN behind a raw-pixel Normalization front (as zoo models are built)."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Normalization(mean=[120.0, 115.0, 100.0], variance=[3600.0, 3500.0, 4000.0])(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras_er.sparsify(keras.Model(inputs, keras.layers.Dense(4)(x)), density=0.3, seed=0)


@pytest.fixture(scope="module")
def model():
    return sparse_cnn()


def pixels(n=3, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, 8, 8, 3)).astype("float32")


@pytest.mark.parametrize("format", WRITABLE)
def test_runtime_reproduces_the_keras_logits(model, format, tmp_path):
    path = tmp_path / NAMES[format]
    report = keras_er.export(model, path, format=format)
    assert report["max_abs_diff"] < 1e-4 and report["backend"] == BACKEND
    x = pixels()
    logits = np.asarray(keras.ops.convert_to_numpy(model(x)))
    (runtime_logits,) = adapters.RUNTIMES[format](path, x)  # a fresh batch, the file as written
    np.testing.assert_allclose(runtime_logits, logits, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no scratch left beside it


@pytest.mark.parametrize("format", WRITABLE)
def test_a_mismatch_leaves_no_file(model, format, tmp_path, monkeypatch):
    real = adapters.RUNTIMES[format]
    monkeypatch.setitem(adapters.RUNTIMES, format, lambda path, x: [o + 1e-3 for o in real(path, x)])
    with pytest.raises(deploy.ExportVerificationError, match="does not reproduce"):
        keras_er.export(model, tmp_path / NAMES[format], format=format)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format", WRITABLE)
def test_an_existing_path_is_kept_unless_overwrite(model, format, tmp_path):
    path = tmp_path / NAMES[format]
    keras_er.export(model, path, format=format)
    before = exporting._size(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_er.export(model, path, format=format)
    assert exporting._size(path) == before
    report = keras_er.export(model, path, format=format, overwrite=True)
    assert report["bytes"] == exporting._size(path) and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("format", REFUSED)
def test_unsupported_backend_format_pair_is_refused_with_the_reason(model, format, tmp_path):
    with pytest.raises(ValueError, match=f"format='{format}' on the {BACKEND} backend: .*KERAS_BACKEND="):
        keras_er.export(model, tmp_path / NAMES[format], format=format)
    assert list(tmp_path.iterdir()) == []


def test_refusal_of_onnx_on_jax_depends_on_jax2onnx(monkeypatch):
    from keras_er.deploy import support

    monkeypatch.setattr(support.importlib.util, "find_spec", lambda name: None)
    assert "pip install jax2onnx" in support.refusal("onnx", "jax") and "KERAS_BACKEND=torch" in support.refusal(
        "onnx", "jax"
    )
    assert support.refusal("onnx", "torch") is None
    monkeypatch.setattr(support.importlib.util, "find_spec", lambda name: object())
    assert support.refusal("onnx", "jax") is None


def test_bad_format_lists_the_allowed_values(model, tmp_path):
    with pytest.raises(ValueError, match="'litert', 'onnx', 'tf_saved_model'; got 'tflite'"):
        keras_er.export(model, tmp_path / "m.tflite", format="tflite")
    with pytest.raises(ValueError, match="cannot be inferred"):
        keras_er.export(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="does not end in it"):
        keras_er.export(model, tmp_path / "m.onnx", format="litert")
    assert list(tmp_path.iterdir()) == []


def test_bad_sample_and_atol_are_refused_before_anything_is_written(model, tmp_path):
    path = tmp_path / NAMES[WRITABLE[0]]
    with pytest.raises(ValueError, match="non-finite"):
        keras_er.export(model, path, format=WRITABLE[0], sample=np.full((2, 8, 8, 3), np.nan, "float32"))
    with pytest.raises(ValueError, match="shape"):
        keras_er.export(model, path, format=WRITABLE[0], sample=np.zeros((2, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="atol"):
        keras_er.export(model, path, format=WRITABLE[0], atol=float("inf"))
    with pytest.raises(TypeError, match="keras.Model"):
        keras_er.export("model", path, format=WRITABLE[0])
    assert list(tmp_path.iterdir()) == []


def test_the_deployment_page_shows_the_support_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "deployment.md").read_text()
    shown = readme.split("<!-- export-support -->\n")[1].split("\n<!-- /export-support -->")[0]
    assert shown == deploy.support_table()


def test_support_table_names_every_format_and_backend():
    table = deploy.support_table()
    assert all(f"`{format}`" in table for format in deploy.FORMATS)
    assert set(deploy.SUPPORT) == {(f, b) for f in deploy.FORMATS for b in keras_er.BACKENDS}


@pytest.mark.parametrize("format", [f for f in WRITABLE if f != "tf_saved_model"])
def test_sparse_weights_are_stored_sparsely(format, tmp_path):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((64,))
    dense = keras.Model(inputs, keras.layers.Dense(256)(keras.layers.Dense(256)(inputs)))
    sparse = keras_er.sparsify(dense, density=0.1, seed=0)
    suffix = deploy.support.SUFFIXES[format]
    dense_bytes = keras_er.export(sparse, tmp_path / f"dense{suffix}", format=format, sparse=False)["bytes"]
    sparse_bytes = keras_er.export(sparse, tmp_path / f"sparse{suffix}", format=format)["bytes"]
    assert dense_bytes > 4 * 64 * 256 + 4 * 256 * 256  # both float32 kernels, zeros included
    assert sparse_bytes < 0.4 * dense_bytes  # 0.1 of the weights, at 4 (LiteRT) or 12 (ONNX) bytes each


@pytest.mark.slow
@pytest.mark.parametrize("format", WRITABLE)
def test_flagship_exports_with_its_raw_pixel_front(format, tmp_path):
    model = keras_er.zoo.resnet20_erk(density=0.1)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    report = keras_er.export(model, tmp_path / NAMES[format], format=format, sample=x)
    assert report["max_abs_diff"] < 1e-4
    if format == "litert":
        assert report["bytes"] <= 300 * 1024
