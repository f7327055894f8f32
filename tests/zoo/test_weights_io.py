import json
import os

import keras
import numpy as np
import pytest

import keras_er
from keras_er.zoo import weights_io
from tests.helpers import masked_cnn
from tests.helpers import to_numpy


def assert_same_weights(a, b):
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(to_numpy(x), to_numpy(y), err_msg=x.path)


@pytest.mark.parametrize("popup", [False, True], ids=["masked", "popup"])
def test_round_trip_is_bit_exact(tmp_path, popup):
    model = masked_cnn(popup=popup, seed=1)
    sha = weights_io.save_weights(model, tmp_path / "w.npz")
    other = masked_cnn(popup=popup, seed=50)
    weights_io.load_weights(other, tmp_path / "w.npz", sha256=sha)
    assert_same_weights(model, other)


def test_popup_kernels_are_stored_as_their_seed(tmp_path):
    model = masked_cnn(popup=True, seed=2)
    weights_io.save_weights(model, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as data:
        manifest = json.loads(data["__manifest__"].tobytes())
    kernels = [r for r in manifest["variables"] if r["name"] == "kernel"]
    assert kernels and all(r["encoding"] == "frozen_seed" for r in kernels)


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
def test_file_is_compact(tmp_path, density):
    dense_path = str(tmp_path / "dense.weights.h5")
    keras_er.zoo.resnet20_dense(pretrained=None).save_weights(dense_path)
    sparse = keras_er.zoo.resnet20_erk(density, pretrained=None)
    weights_io.save_weights(sparse, tmp_path / "w.npz")
    ratio = os.path.getsize(tmp_path / "w.npz") / os.path.getsize(dense_path)
    assert ratio <= 1.5 * density, ratio


def saved(tmp_path):
    model = masked_cnn(seed=1)
    path = tmp_path / "w.npz"
    return model, path, weights_io.save_weights(model, path)


def test_a_flipped_byte_is_refused_and_nothing_loaded(tmp_path):
    _, path, sha = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    target = masked_cnn(seed=9)
    before = [to_numpy(w) for w in target.weights]
    with pytest.raises(ValueError, match="sha256 mismatch"):
        weights_io.load_weights(target, path, sha256=sha)
    for w, b in zip(target.weights, before):
        np.testing.assert_array_equal(to_numpy(w), b)


def test_a_truncated_file_is_refused_even_without_a_checksum(tmp_path):
    _, path, sha = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="sha256 mismatch"):
        weights_io.load_weights(masked_cnn(), path, sha256=sha)
    with pytest.raises(ValueError, match="not a readable keras_er weight file"):
        weights_io.load_weights(masked_cnn(), path)


def test_a_file_from_another_architecture_is_refused(tmp_path):
    _, path, _ = saved(tmp_path)
    other = keras.Sequential([keras.Input((4,)), keras_er.layers.MaskedDense(2)])
    with pytest.raises(ValueError, match="another architecture|does not match"):
        weights_io.load_weights(other, path)


def test_a_newer_format_version_is_refused(tmp_path):
    model, path, _ = saved(tmp_path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    manifest = json.loads(arrays["__manifest__"].tobytes())
    manifest["version"] = weights_io.FORMAT_VERSION + 1
    arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="version 2.*Upgrade keras_er"):
        weights_io.load_weights(model, path)


def test_a_non_weight_file_and_a_missing_file_are_refused(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="manifest"):
        weights_io.load_weights(masked_cnn(), tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        weights_io.load_weights(masked_cnn(), tmp_path / "missing.npz")
