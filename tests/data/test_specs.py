import os

import keras
import pytest

from keras_er import data
from keras_er.data import DATASET_SPECS
from keras_er.data import DatasetSpec
from keras_er.data import DownloadSource
from keras_er.data import RemoteFile
from keras_er.data import pipeline
from keras_er.data import register_dataset
from keras_er.data import sources
from keras_er.data import unregister_dataset

KERAS_DATASETS_SOURCE = os.path.join(os.path.dirname(keras.__file__), "src", "datasets")


def test_datasets_and_normalization_see_a_dataset_registered_later():
    from keras_er.data import DATASETS  # imported before the registration
    from keras_er.data import NORMALIZATION  # imported before the registration

    assert "tiny_live" not in DATASETS and "tiny_live" not in NORMALIZATION
    register_dataset(DatasetSpec("tiny_live", (4, 4, 2), 2, (1.0, 2.0), (3.0, 4.0)))
    try:
        for names in (DATASETS, data.DATASETS, sources.DATASETS):
            assert "tiny_live" in names and names[-1] == "tiny_live"
            assert names == tuple(DATASET_SPECS) and len(names) == len(DATASET_SPECS)
        for normalization in (NORMALIZATION, data.NORMALIZATION, pipeline.NORMALIZATION):
            assert normalization["tiny_live"] == ((1.0, 2.0), (3.0, 4.0))
            assert dict(normalization)["cifar10"] == (DATASET_SPECS["cifar10"].mean, DATASET_SPECS["cifar10"].std)
    finally:
        unregister_dataset("tiny_live")
    assert "tiny_live" not in DATASETS and "tiny_live" not in NORMALIZATION


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_built_in_download_facts_match_the_installed_keras_datasets(name):
    """Same URL, hash and cache name as keras.datasets.<name>.load_data(), so each reuses the other's files."""
    with open(os.path.join(KERAS_DATASETS_SOURCE, f"{name}.py")) as handle:
        keras_source = handle.read()
    for remote in DATASET_SPECS[name].download.files:
        folder, file_name = remote.origin.rsplit("/", 1)
        assert folder + "/" in keras_source and file_name in keras_source
        assert remote.fname in keras_source
        assert remote.file_hash is None or remote.file_hash in keras_source
    assert (DATASET_SPECS[name].download.files[0].file_hash is None) == (name == "fashion_mnist")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"origin": "cifar.tar.gz"}, "`origin` must be a URL"),
        ({"file_hash": "abc"}, "`file_hash` must be None or a sha256"),
        ({"fname": "a.tar", "extract": True}, "`fname` must be a file name, without a dot"),
        ({"cache_subdir": "../elsewhere"}, "`cache_subdir` must be a folder inside"),
    ],
)
def test_remote_file_refuses_bad_facts(kwargs, match):
    facts = {"origin": "https://host/a.npz", "file_hash": None, "fname": "a.npz", **kwargs}
    with pytest.raises(ValueError, match=match):
        RemoteFile(**facts)


def test_download_source_and_spec_refuse_bad_types():
    remote = RemoteFile("https://host/a.npz", None, "a.npz")
    with pytest.raises(ValueError, match="`format` must be one of npz, idx, cifar10, cifar100"):
        DownloadSource((remote,), "zip")
    with pytest.raises(TypeError, match="`files` must be a non-empty tuple of RemoteFile"):
        DownloadSource(("https://host/a.npz",), "npz")
    with pytest.raises(TypeError, match="`download` must be a DownloadSource or None"):
        register_dataset(DatasetSpec("bad", (8, 8, 1), 2, (0.0,), (1.0,), download=remote))
    assert "bad" not in DATASET_SPECS


def test_the_built_in_datasets_are_protected_and_names_are_not_reused():
    with pytest.raises(ValueError, match="Dataset 'cifar10' exists already"):
        register_dataset(DatasetSpec("cifar10", (8, 8, 1), 2, (0.0,), (1.0,)))
    with pytest.raises(ValueError, match="Dataset 'cifar10' is built in and cannot be unregistered"):
        unregister_dataset("cifar10")
    assert DATASET_SPECS["cifar10"].shape == (32, 32, 3)
    register_dataset(DatasetSpec("tiny_once", (8, 8, 1), 2, (0.0,), (1.0,)))
    try:
        with pytest.raises(ValueError, match="exists already"):
            register_dataset(DatasetSpec("tiny_once", (4, 4, 1), 2, (0.0,), (1.0,)))
        assert DATASET_SPECS["tiny_once"].shape == (8, 8, 1)
    finally:
        unregister_dataset("tiny_once")
    with pytest.raises(ValueError, match="No registered dataset 'tiny_once'"):
        unregister_dataset("tiny_once")
