"""Entries whose weights live outside the wheel: moved out, downloaded or placed by hand, checked."""

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from keras_er import zoo
from keras_er.app import publish
from keras_er.zoo import registry
from keras_er.zoo import report
from keras_er.zoo import weight_files
from tests.data.test_download import call_with_deadline
from tests.data.test_download import misbehaving_server
from tests.helpers import to_numpy


@pytest.fixture
def moved_out(tmp_path, monkeypatch):
    """A zoo with one entry moved out to an assets folder, not uploaded yet; an empty Keras cache; no mirror."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE", raising=False)
    model = zoo.resnet20_dense(pretrained=None, include_preprocessing=False)
    root = tmp_path / "zoo"
    entry = zoo.export(model, "resnet20", "dense", root=root)
    moved = publish.move_out(entry["id"], tmp_path / "assets", root=root, base="http://127.0.0.1:1/zoo-v1")
    logits = to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False))
    return root, moved, tmp_path / "assets" / weight_files.asset_name(moved), logits


@pytest.fixture
def external(moved_out):
    """The moved-out entry, released: it downloads from its origin (nothing listens there)."""
    root, entry, asset, logits = moved_out
    return root, publish.mark_released(entry["id"], root=root), asset, logits


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
    with pytest.raises(weight_files.ZooWeightsUnavailable) as error:
        load(root)
    message = str(error.value)
    for expected in (entry["id"], entry["origin"], str(weight_files.cached_path(entry)), "KERAS_ER_DOWNLOAD_BASE"):
        assert expected in message
    assert error.value.offline  # connection refused: no answer
    assert error.value.__cause__ is None and error.value.__suppress_context__  # one exception, not a chain


def test_a_mirror_folder_or_a_placed_file_loads_the_same_logits(external, monkeypatch):
    root, entry, asset, logits = external
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert weight_files.cached_path(entry).is_file()
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE")
    load(root)  # from the cache, offline


def test_a_corrupted_copy_in_the_cache_is_refused_and_replaced(external, monkeypatch):
    root, entry, asset, logits = external
    cached = weight_files.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(asset.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(weight_files.ZooWeightsUnavailable, match="Downloading .* failed"):
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
    with pytest.raises(weight_files.ZooWeightsUnavailable) as error:
        load(root)
    assert not error.value.offline  # an answer with the wrong bytes is a failure, never a skip
    assert not weight_files.cached_path(entry).exists()
    assert not [p for p in weight_files.cached_path(entry).parent.iterdir() if p.name != ".lock"]


def test_cli_export_external_moves_the_exported_entry(tmp_path, monkeypatch):
    from keras_er.app import cli

    calls = []
    monkeypatch.setattr(publish, "export_run", lambda run, root=None, limit=None, replace=False: {"id": "an_entry"})
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
    assert not weight_files.available_offline(entry, root)
    weight_files.cached_path(entry).parent.mkdir(parents=True)
    weight_files.cached_path(entry).write_bytes(asset.read_bytes()[:-1])
    assert not weight_files.available_offline(entry, root)  # a mismatching copy does not count
    weight_files.cached_path(entry).write_bytes(asset.read_bytes())
    assert weight_files.available_offline(entry, root)


def left_beside_the_cache(entry):
    folder = weight_files.cached_path(entry).parent
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.is_dir() else []


def test_a_truncating_mirror_is_a_failure_naming_the_byte_counts_not_a_skip(external, monkeypatch):
    root, entry, asset, _ = external
    body = asset.read_bytes()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with misbehaving_server(body, len(body) // 2) as base:
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", base)
        with pytest.raises(weight_files.ZooWeightsUnavailable) as error:
            load(root)
    assert not error.value.offline  # the published-entry tests fail on this, they do not skip
    assert f"truncated: expected {len(body)} bytes (Content-Length), got {len(body) // 2}" in str(error.value)
    assert left_beside_the_cache(entry) == []


def test_a_stalling_mirror_fails_within_the_timeout(external, monkeypatch):
    root, entry, asset, _ = external
    body = asset.read_bytes()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with misbehaving_server(body, 4096, stall="body") as base:
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", base)
        error, seconds = call_with_deadline(lambda: weight_files.weight_path(entry, root, timeout=1), 20)
    assert isinstance(error, weight_files.ZooWeightsUnavailable), error
    assert seconds < 10 and not error.offline
    assert f"no data for 1 s after 4096 of {len(body)} bytes" in str(error)
    assert left_beside_the_cache(entry) == []


def test_a_download_killed_mid_body_leaves_a_scratch_file_the_next_download_removes(external, monkeypatch):
    root, entry, asset, logits = external
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    code = (
        "import json, sys\nfrom keras_er.zoo import weight_files\n"
        "weight_files.weight_path(json.loads(sys.argv[1]), sys.argv[2])"
    )
    folder = weight_files.cached_path(entry).parent
    with misbehaving_server(asset.read_bytes(), 4096, stall="body") as base:
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", base)
        repo = Path(__file__).resolve().parents[2]
        child = subprocess.Popen([sys.executable, "-c", code, json.dumps(entry), str(root)], cwd=repo, env=os.environ)
        try:
            deadline = time.monotonic() + 300
            while not (folder.is_dir() and any(".part-" in p.name for p in folder.iterdir())):
                assert child.poll() is None and time.monotonic() < deadline, "the child never started its download"
                time.sleep(0.1)
        finally:
            child.kill()  # SIGKILL: no `finally` of the child runs
            child.wait()
    stale = left_beside_the_cache(entry)
    assert len(stale) == 1 and stale[0].startswith(weight_files.cached_path(entry).name + ".part-")
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert left_beside_the_cache(entry) == [weight_files.cached_path(entry).name]


def test_a_bad_timeout_is_refused_before_any_download(external, monkeypatch):
    root, entry, asset, _ = external
    with pytest.raises(ValueError, match="`timeout` must be a finite positive number"):
        weight_files.weight_path(entry, root, timeout=0)
    with pytest.raises(TypeError, match="`timeout`"):
        weight_files.weight_path(entry, root, timeout="60")
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_TIMEOUT", "never")
    with pytest.raises(ValueError, match="KERAS_ER_DOWNLOAD_TIMEOUT"):
        load(root)


def test_an_entry_not_uploaded_yet_is_not_distributed_and_tries_no_download(moved_out):
    root, entry, asset, _ = moved_out
    assert entry["released"] is False
    assert weight_files.weights_status(entry, root) == weight_files.NOT_DISTRIBUTED
    (row,) = zoo.available_weights(root=root)
    assert row["weights"] == weight_files.NOT_DISTRIBUTED
    assert weight_files.NOT_DISTRIBUTED in report.markdown_table(root)
    assert "not distributed yet" in (root / entry["id"] / "card.md").read_text()
    with pytest.raises(weight_files.ZooWeightsUnavailable) as error:
        load(root)
    message = str(error.value)
    assert "not distributed" in message and "Downloading" not in message  # the origin (port 1) was never tried
    assert str(root / entry["id"] / "card.md") in message and str(weight_files.cached_path(entry)) in message
    assert not error.value.offline  # a failure for the published-entry tests, not a skip
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_a_mirror_serves_an_entry_not_uploaded_yet_and_its_status_follows(moved_out, monkeypatch):
    root, entry, asset, logits = moved_out
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(asset.parent))
    model = load(root)
    np.testing.assert_array_equal(to_numpy(model(zoo.reference_batch(entry["input_shape"]), training=False)), logits)
    assert weight_files.weights_status(entry, root) == weight_files.CACHED
    released = publish.mark_released(entry["id"], root=root)
    assert json.loads((root / "index.json").read_text())["entries"][0]["released"] is True
    assert "on first use" in (root / entry["id"] / "card.md").read_text()
    weight_files.cached_path(entry).unlink()
    assert weight_files.weights_status(released, root) == weight_files.DOWNLOADED


def test_a_shipped_entry_cannot_be_marked_released(tmp_path):
    root = tmp_path / "zoo"
    entry = zoo.export(zoo.resnet20_dense(pretrained=None), "resnet20", "dense", root=root)
    assert weight_files.weights_status(entry, root) == weight_files.SHIPPED
    with pytest.raises(ValueError, match="shipped in the zoo folder"):
        publish.mark_released(entry["id"], root=root)


NOT_UPLOADED = [e for e in registry.load_index() if e.get("origin") and not weight_files.released(e)]


@pytest.mark.parametrize("entry", NOT_UPLOADED, ids=[e["id"] for e in NOT_UPLOADED])
def test_a_shipped_index_entry_not_uploaded_fails_at_once_naming_the_cards_command(entry, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no copy in the cache
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE", raising=False)
    assert weight_files.weights_status(entry) == weight_files.NOT_DISTRIBUTED
    command = weight_files.reproduce_command(entry)
    assert command.startswith("keras-er ") and f"--model {entry['arch']}" in command
    with pytest.raises(weight_files.ZooWeightsUnavailable) as error:
        zoo.load(entry["id"])
    assert command in str(error.value) and error.value.__context__ is None
    assert len(traceback.format_exception(error.value)) < 15  # one short traceback, no chain
