"""Entries whose weights live outside the wheel: moved out, downloaded or placed by hand, checked."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_er import zoo
from keras_er.zoo import publish
from keras_er.zoo import registry
from tests.helpers import to_numpy


@pytest.fixture
def external(tmp_path, monkeypatch):
    """A zoo with one entry moved out to an assets folder; an empty Keras cache; no mirror."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE", raising=False)
    model = zoo.resnet20_dense(pretrained=None, include_preprocessing=False)
    root = tmp_path / "zoo"
    entry = zoo.export(model, "resnet20", "dense", root=root)
    moved = publish.move_out(entry["id"], tmp_path / "assets", root=root, base="http://127.0.0.1:1/zoo-v1")
    logits = to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False))
    return root, moved, tmp_path / "assets" / registry.asset_name(moved), logits


def load(root):
    return zoo.resnet20_dense(pretrained=True, root=root, include_preprocessing=False)


def test_moving_out_removes_the_file_and_records_where_it_comes_from(external):
    root, entry, asset, _ = external
    assert not (root / entry["file"]).exists() and asset.is_file()
    assert entry["origin"] == f"http://127.0.0.1:1/zoo-v1/{asset.name}"
    assert entry["file_bytes"] == asset.stat().st_size
    indexed = json.loads((root / "index.json").read_text())["entries"][0]
    assert indexed["origin"] == entry["origin"]
    assert entry["origin"] in (root / entry["id"] / "card.md").read_text()


def test_without_the_file_the_error_says_where_it_comes_from(external):
    root, entry, asset, _ = external
    with pytest.raises(registry.ZooWeightsUnavailable) as error:
        load(root)
    message = str(error.value)
    for expected in (entry["id"], entry["origin"], str(registry.cached_path(entry)), "KERAS_ER_DOWNLOAD_BASE"):
        assert expected in message


def test_a_mirror_folder_or_a_placed_file_loads_the_same_logits(external, monkeypatch):
    root, entry, asset, logits = external
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert registry.cached_path(entry).is_file()
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE")
    load(root)  # from the cache, offline


def test_a_corrupted_copy_in_the_cache_is_refused(external):
    root, entry, asset, _ = external
    cached = registry.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(asset.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(registry.ZooWeightsUnavailable, match="Downloading .* failed"):
        load(root)  # get_file re-downloads a mismatching file; the origin is unreachable


def test_cli_export_external(tmp_path):
    # the CLI flag reaches move_out (the move itself is tested above)
    process = subprocess.run(
        [sys.executable, "-m", "keras_er", "export", "--help"], capture_output=True, text=True, check=True
    )
    assert "--external" in process.stdout
