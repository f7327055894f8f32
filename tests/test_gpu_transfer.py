"""zoo/gpu_transfer.py: lossless CIFAR-10 coding for the GPU machine, runs back in checked pieces."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_transfer", REPO / "zoo" / "gpu_transfer.py")
gpu_transfer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_transfer)


def images(n, seed=0, noise=20):
    """Smooth images with noise and saturated corners: every branch of the predictor."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 190, 32)[None, :, None, None] + np.linspace(0, 60, 32)[None, None, :, None]
    x = ramp + rng.normal(0, noise, (n, 32, 32, 3))
    x[:, :4, :4] = rng.choice([0, 255], size=(n, 4, 4, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("x", [images(7), np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)])
def test_image_coding_is_lossless(x):
    assert np.array_equal(gpu_transfer.decode_images(gpu_transfer.encode_images(x), x.shape), x)


def test_image_coding_compresses_smooth_images():
    import lzma

    x = images(50, noise=2)
    assert len(lzma.compress(gpu_transfer.encode_images(x))) < 0.9 * len(lzma.compress(x.tobytes()))


@pytest.fixture
def small_npz(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_transfer, "CHUNK_IMAGES", 4)
    path = tmp_path / "cifar10.npz"
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": images(10, 1),
        "y_train": rng.integers(0, 10, 10).astype(np.uint8),
        "x_test": images(5, 2),
        "y_test": rng.integers(0, 10, 5).astype(np.uint8),
    }
    np.savez(path, **arrays)
    return path, arrays


def test_data_round_trip_over_two_parts(small_npz, tmp_path):
    path, arrays = small_npz
    gpu_transfer.pack_data(path, tmp_path / "gpu", parts=2, workers=1)
    parts = sorted((tmp_path / "gpu").iterdir())
    assert [p.name for p in parts] == ["a", "b"] and all(any(p.glob("*.xz")) for p in parts)
    gpu_transfer.unpack_data(parts, tmp_path / "out" / "cifar10.npz", workers=1)
    restored = np.load(tmp_path / "out" / "cifar10.npz")
    assert set(restored) == set(arrays)
    for key, value in arrays.items():
        assert np.array_equal(restored[key], value), key


def test_data_unpack_refuses_changed_bytes_and_missing_chunks(small_npz, tmp_path):
    path, _ = small_npz
    gpu_transfer.pack_data(path, tmp_path / "gpu", parts=2, workers=1)
    parts = sorted((tmp_path / "gpu").iterdir())
    manifest = json.loads((parts[-1] / "manifest.json").read_text())
    manifest["arrays"]["x_test"]["sha256"] = "0" * 64
    (parts[-1] / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="x_test decoded to different bytes"):
        gpu_transfer.unpack_data(parts, tmp_path / "out.npz", workers=1)
    assert not (tmp_path / "out.npz").exists()
    with pytest.raises(FileNotFoundError, match="is in none of"):
        gpu_transfer.unpack_data(parts[-1:], tmp_path / "out.npz", workers=1)


def fake_run(folder, megabytes):
    import h5py

    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model": "resnet20"}')
    (folder / "log.csv").write_text("epoch,accuracy\n0,0.5\n")
    (folder / "backup").mkdir()
    (folder / "backup" / "latest.weights.h5").write_bytes(b"not sent")
    rng = np.random.default_rng(0)
    with h5py.File(folder / "model.weights.h5", "w") as f:
        f.create_dataset("layers/dense/vars/0", data=rng.normal(size=megabytes * 2**18).astype("float32"))
        f.create_dataset("optimizer/vars/0", data=np.ones(1000, "float32"))
        f["layers"].attrs["name"] = "layers"
    return folder


def test_runs_come_back_in_pieces_over_several_fetches(tmp_path, monkeypatch):
    import h5py

    monkeypatch.setattr(gpu_transfer, "PIECE_BYTES", 2**20)
    monkeypatch.setattr(gpu_transfer, "PIECES_PER_CALL", 2)
    run = fake_run(tmp_path / "runs" / "r1", megabytes=3)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "check.md").write_text("ok")
    gpu_transfer.pack_runs([run], tmp_path / "pieces", tmp_path / "call1", extra=[tmp_path / "results"])
    assert len(list((tmp_path / "pieces").glob("runs.tar.0*"))) == 3  # 3 MiB of float noise, shuffled + gzip
    assert len(list((tmp_path / "call1").glob("runs.tar.0*"))) == 2
    with pytest.raises(ValueError, match="do not join"):
        gpu_transfer.unpack_runs(sorted((tmp_path / "call1").glob("runs.tar.*")), tmp_path / "back")
    gpu_transfer.fetch(tmp_path / "pieces", 2, tmp_path / "call2")
    pieces = [*(tmp_path / "call1").glob("runs.tar.*"), *(tmp_path / "call2").glob("runs.tar.*")]
    gpu_transfer.unpack_runs(pieces, tmp_path / "back")
    back = tmp_path / "back" / "r1"
    assert sorted(p.name for p in back.iterdir()) == ["config.json", "log.csv", "model.weights.h5"]
    assert (tmp_path / "back" / "gpu_extra" / "results" / "check.md").read_text() == "ok"
    with h5py.File(run / "model.weights.h5") as sent, h5py.File(back / "model.weights.h5") as received:
        assert np.array_equal(sent["layers/dense/vars/0"][()], received["layers/dense/vars/0"][()])
        assert received["layers"].attrs["name"] == "layers"
        assert "optimizer" not in received


def test_a_member_outside_the_target_is_refused(tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("runs//tmp/escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = buffer.getvalue()
    (tmp_path / "runs.tar.00").write_bytes(data)
    (tmp_path / "runs.tar.sha256").write_text(f"{gpu_transfer.sha256(data)} 1\n")
    with pytest.raises(ValueError, match="unexpected member"):
        gpu_transfer.unpack_runs([tmp_path / "runs.tar.00"], tmp_path / "back")
    assert not (tmp_path / "back").exists() or not any((tmp_path / "back").rglob("*"))
