import gzip
import pickle

import numpy as np
import pytest

from keras_er.data import readers
from keras_er.data import sources
from keras_er.data.sources import DatasetNotFoundError
from keras_er.data.sources import load_arrays

REAL_FROM_TFDS = sources._from_tfds  # the `offline` fixture (conftest.py) replaces it


def test_npz_in_keras_er_data(offline):
    x = (np.arange(4 * 32 * 32 * 3) % 256).astype(np.uint8).reshape(4, 32, 32, 3)
    np.savez(offline / "data" / "cifar10.npz", x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    images, labels = load_arrays("cifar10", "test")
    np.testing.assert_array_equal(images, x[:2])
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1]


def test_keras_cache_cifar10_batches(offline):
    folder = offline / "keras" / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    batch = {b"data": chw.reshape(2, -1), b"labels": [3, 7]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    images, labels = load_arrays("cifar10", "test")
    np.testing.assert_array_equal(images, chw.transpose(0, 2, 3, 1))
    assert labels.tolist() == [3, 7]


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_fashion_mnist_idx_files(offline, monkeypatch):
    folder = offline / "fmnist"
    folder.mkdir()
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.uint8))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", folder)
    x, y = load_arrays("fashion_mnist", "test")
    assert x.shape == (3, 28, 28, 1) and y.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(x[..., 0], images)


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros((5, 4), np.uint8))
    with gzip.open(path) as handle:
        data = handle.read()[:-3]
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    with pytest.raises(ValueError, match="truncated"):
        readers.read_idx(path)


def test_missing_dataset_names_every_place_looked(offline, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", offline / "nowhere")
    with pytest.raises(DatasetNotFoundError) as info:
        load_arrays("fashion_mnist", "train", download=False)
    message = str(info.value)
    for place in (
        "tfds",
        "fashion_mnist.npz",
        str(offline / "keras" / "datasets" / "fashion-mnist"),
        "nowhere",
        "apt-get install dataset-fashion-mnist",
        "download=True",
    ):
        assert place in message


@pytest.mark.parametrize(
    "name, split, match", [("svhn", "train", "cifar10, cifar100"), ("mnist", "val", "train, test")]
)
def test_bad_names_and_splits(name, split, match):
    with pytest.raises(ValueError, match=match):
        load_arrays(name, split)


@pytest.mark.skipif(
    not sources.DEBIAN_FASHION_MNIST.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("KERAS_ER_DATA", raising=False)
    x, y = load_arrays("fashion_mnist", "test")
    assert x.shape == (10000, 28, 28, 1) and sorted(set(y.tolist())) == list(range(10))
    assert np.bincount(y).tolist() == [1000] * 10


def _cifar_npz(folder, x=None, y=None):
    x = np.zeros((4, 32, 32, 3), np.uint8) if x is None else x
    y = np.arange(len(x)) % 10 if y is None else y
    np.savez(folder / "data" / "cifar10.npz", x_train=x, y_train=y, x_test=x, y_test=y)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (
            np.full((4, 32, 32, 3), 0.5, np.float32),
            None,
            r"uint8 pixels 0-255; got float32 in \[0.5, 0.5\] \(scale by 255",
        ),
        (np.full((4, 32, 32, 3), 300, np.int32), None, "values outside 0-255"),
        (np.zeros((4, 28, 28, 3), np.uint8), None, r"shape \(N, 32, 32, 3\)"),
        (None, np.array([0, 1, 2, 10]), r"labels must be in \[0, 10\)"),
        (None, np.array([0, 1, -1, 2]), r"labels must be in \[0, 10\)"),
        (None, np.array([0, 1, 2]), "4 images but 3 labels"),
        (None, np.array([0.0, 1.5, 2.0, 3.0]), "whole numbers"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file(offline, x, y, message):
    _cifar_npz(offline, x, y)
    with pytest.raises(ValueError, match=message) as error:
        load_arrays("cifar10", "test")
    assert "cifar10.npz" in str(error.value)


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"random bytes"])
def test_corrupt_npz_names_its_path(offline, content):
    (offline / "data" / "cifar10.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"cifar10.npz is not a readable npz file"):
        load_arrays("cifar10", "test")


def test_truncated_npz_names_its_path(offline):
    _cifar_npz(offline, np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), np.uint8))
    path = offline / "data" / "cifar10.npz"
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(ValueError, match="cifar10.npz"):
        load_arrays("cifar10", "test")


def test_npz_without_the_split_names_the_missing_array(offline):
    np.savez(offline / "data" / "cifar10.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="has no x_test or y_test array"):
        load_arrays("cifar10", "test")


def test_a_registered_dataset_loads_from_keras_er_data(offline):
    from keras_er.data import DatasetSpec
    from keras_er.data import register_dataset
    from keras_er.data import unregister_dataset

    register_dataset(DatasetSpec("tiny_test", (8, 8, 1), 3, (1.0,), (2.0,)))
    try:
        x = np.ones((5, 8, 8), np.uint8)
        np.savez(
            offline / "data" / "tiny_test.npz", x_train=x, y_train=np.arange(5) % 3, x_test=x, y_test=np.arange(5) % 3
        )
        images, labels = load_arrays("tiny_test", "test")
        assert images.shape == (5, 8, 8, 1) and labels.max() == 2
    finally:
        unregister_dataset("tiny_test")


def test_tensorflow_datasets_as_the_source_is_validated_and_named(offline, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("tensorflow_datasets")
    fake.load = lambda *args, **kwargs: "data"
    fake.as_numpy = lambda data: (np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 11]))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.setattr(sources, "_from_tfds", REAL_FROM_TFDS)
    with pytest.raises(ValueError, match=r"tensorflow-datasets data_dir=\(default\) \(test\): labels"):
        load_arrays("cifar10", "test")
    fake.as_numpy = lambda data: (np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 9]))
    assert load_arrays("cifar10", "test")[1].tolist() == [0, 9]


def test_keras_3_13_cifar10_extraction_folder(offline):
    folder = offline / "keras" / "datasets" / "cifar-10-batches-py-target_extracted" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    chw = np.zeros((2, 3, 32, 32), np.uint8)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": chw.reshape(2, -1), b"labels": [0, 1]}))
    images, labels = load_arrays("cifar10", "test")
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [0, 1]


def _write_cifar_batch(path, images_chw, labels, label_key=b"labels"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({b"data": images_chw.reshape(len(images_chw), -1), label_key: labels}))


def test_keras_3_15_cifar100_extraction_folder_under_keras_home(offline):
    chw = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    folder = offline / "keras" / "datasets" / "cifar-100-python-target" / "cifar-100-python"
    _write_cifar_batch(folder / "test", chw, [5, 50, 99], b"fine_labels")
    images, labels = load_arrays("cifar100", "test", download=False)
    np.testing.assert_array_equal(images, chw.transpose(0, 2, 3, 1))
    assert labels.tolist() == [5, 50, 99]


def test_keras_cache_mnist_npz_follows_keras_home(offline, monkeypatch):
    x = np.full((3, 28, 28), 7, np.uint8)
    other_home = offline / "elsewhere"
    (other_home / "datasets").mkdir(parents=True)
    np.savez(other_home / "datasets" / "mnist.npz", x_train=x, y_train=[1, 2, 3], x_test=x, y_test=[4, 5, 6])
    with pytest.raises(DatasetNotFoundError):
        load_arrays("mnist", "test", download=False)
    monkeypatch.setenv("KERAS_HOME", str(other_home))
    images, labels = load_arrays("mnist", "test", download=False)
    assert images.shape == (3, 28, 28, 1) and labels.tolist() == [4, 5, 6]


class _RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_cifar_batch_that_would_run_code_is_refused(offline):
    folder = offline / "keras" / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR batch .*refusing to unpickle builtins.print"):
        load_arrays("cifar10", "test", download=False)


def test_download_must_be_a_bool(offline):
    with pytest.raises(TypeError, match="`download` must be True or False"):
        load_arrays("cifar10", "test", download="yes")
