"""Entries whose weights live outside the wheel: moved out, downloaded or placed by hand, checked."""

import json

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
    assert error.value.offline  # connection refused: no answer


def test_a_mirror_folder_or_a_placed_file_loads_the_same_logits(external, monkeypatch):
    root, entry, asset, logits = external
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert registry.cached_path(entry).is_file()
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE")
    load(root)  # from the cache, offline


def test_a_corrupted_copy_in_the_cache_is_refused_and_replaced(external, monkeypatch):
    root, entry, asset, logits = external
    cached = registry.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(asset.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(registry.ZooWeightsUnavailable, match="Downloading .* failed"):
        load(root)  # the mismatching copy is not used; the origin is unreachable
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert cached.read_bytes() == asset.read_bytes()


def test_a_mirror_with_other_bytes_is_refused_and_leaves_no_file(external, tmp_path, monkeypatch):
    root, entry, asset, _ = external
    wrong = tmp_path / "wrong_mirror"
    wrong.mkdir()
    (wrong / asset.name).write_bytes(asset.read_bytes()[:-1])
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(wrong))
    with pytest.raises(registry.ZooWeightsUnavailable) as error:
        load(root)
    assert not error.value.offline  # an answer with the wrong bytes is a failure, never a skip
    assert not registry.cached_path(entry).exists()
    assert not [p for p in registry.cached_path(entry).parent.iterdir() if p.name != ".lock"]


def test_cli_export_external_moves_the_exported_entry(tmp_path, monkeypatch):
    from keras_er import cli

    calls = []
    monkeypatch.setattr(publish, "export_run", lambda run, root=None, limit=None: {"id": "an_entry"})
    monkeypatch.setattr(
        publish,
        "move_out",
        lambda entry_id, assets, root=None: (
            calls.append((entry_id, assets, root)) or {"id": entry_id, "origin": "u", "sha256": "0" * 64, "top1": {}}
        ),
    )
    assert cli.main(["export", str(tmp_path), "--root", "zoo_here", "--external", "assets_here"]) == 0
    assert calls == [("an_entry", "assets_here", "zoo_here")]


def test_moving_out_twice_says_it_already_happened(external):
    root, entry, asset, _ = external
    with pytest.raises(ValueError, match="already outside"):
        publish.move_out(entry["id"], asset.parent, root=root)


def test_available_offline_follows_the_cache(external):
    root, entry, asset, _ = external
    assert not registry.available_offline(entry, root)
    registry.cached_path(entry).parent.mkdir(parents=True)
    registry.cached_path(entry).write_bytes(asset.read_bytes()[:-1])
    assert not registry.available_offline(entry, root)  # a mismatching copy does not count
    registry.cached_path(entry).write_bytes(asset.read_bytes())
    assert registry.available_offline(entry, root)
