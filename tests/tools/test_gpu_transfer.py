"""tools/gpu_transfer.py: lossless CIFAR-10 coding for the GPU machine, runs back in checked pieces."""

import importlib.util
import io
import json
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_transfer", REPO / "tools" / "gpu_transfer.py")
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


def tree(root):
    """Every path under `root` (hidden ones too) with its bytes, None for a folder: a byte-exact picture."""
    root = Path(root)
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def tar_pieces(folder, members):
    """`members` ((name, bytes), or a TarInfo for a link) as one checked piece runs.tar.00 in `folder`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.tar.00").write_bytes(data)
    (folder / "runs.tar.sha256").write_text(f"{gpu_transfer.sha256(data)} 1\n")
    return [folder / "runs.tar.00"]


def link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_a_member_outside_the_target_is_refused(tmp_path):
    pieces = tar_pieces(tmp_path / "call", [("runs//tmp/escaped", b"x")])
    with pytest.raises(ValueError, match="unexpected member"):
        gpu_transfer.unpack_runs(pieces, tmp_path / "back")
    assert not (tmp_path / "back").exists()


@pytest.mark.parametrize(
    "third",
    [
        ("runs//tmp/escaped", b"x"),
        ("runs/r2/../../../escaped", b"x"),
        ("extra/results/../../../escaped", b"x"),
        link("runs/r2/link", "/tmp"),
        link("runs/r2/link", "../../../escaped"),
        link("runs/r2/hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
    ids=["absolute", "traversal", "extra-traversal", "symlink-absolute", "symlink-up", "hardlink"],
)
@pytest.mark.parametrize("into_exists", [True, False], ids=["into-exists", "into-new"])
def test_a_tar_whose_third_member_escapes_leaves_into_unchanged(tmp_path, third, into_exists):
    local = tmp_path / "work" / "runs"
    if into_exists:
        fake_run(local / "r0", megabytes=1)
    before = tree(tmp_path)
    members = [("runs/r2/config.json", b"{}"), ("runs/r2/log.csv", b"epoch\n"), third, ("runs/r3/log.csv", b"")]
    pieces = tar_pieces(tmp_path / "call", members)
    before = {**tree(tmp_path), "call": None}
    with pytest.raises(ValueError, match="unexpected member .*nothing was written"):
        gpu_transfer.unpack_runs(pieces, local)
    assert tree(tmp_path) == before  # not r2/config.json, not an emptied scratch folder, not `local` itself
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "work" / "escaped").exists()


def test_unpack_runs_refuses_run_folders_already_there(tmp_path, capsys):
    local = tmp_path / "runs"
    fake_run(local / "r1", megabytes=1)
    fake_run(local / "r2", megabytes=1)
    sent = [fake_run(tmp_path / "gpu" / name, megabytes=1) for name in ("r1", "r2", "r3")]
    (sent[0] / "config.json").write_text('{"model": "vgg16"}')
    gpu_transfer.pack_runs(sent, tmp_path / "pieces", tmp_path / "call")
    pieces = sorted((tmp_path / "call").glob("runs.tar.*"))
    before = tree(local)
    with pytest.raises(FileExistsError, match=r"already holds r1, r2 \(in this tar\); nothing was written.*--replace"):
        gpu_transfer.unpack_runs(pieces, local)
    assert tree(local) == before  # r1's config, log and weights as they were; r3 not written either
    assert gpu_transfer.main(["unpack-runs", *map(str, pieces), "--into", str(local)]) == 1
    assert f"--into {local} already holds r1, r2" in capsys.readouterr().err
    assert tree(local) == before


def test_replace_swaps_each_run_folder_whole(tmp_path):
    local = tmp_path / "runs"
    fake_run(local / "r1", megabytes=1)  # with a backup/ that the new run does not have
    (local / "r1" / "summary.json").write_text('{"old": true}')
    fake_run(local / "r0", megabytes=1)
    untouched = tree(local / "r0")
    sent = fake_run(tmp_path / "gpu" / "r1", megabytes=2)
    (sent / "config.json").write_text('{"model": "vgg16"}')
    gpu_transfer.pack_runs([sent], tmp_path / "pieces", tmp_path / "call")
    pieces = [str(p) for p in (tmp_path / "call").glob("runs.tar.*")]
    assert gpu_transfer.main(["unpack-runs", *pieces, "--into", str(local), "--replace"]) == 0
    assert sorted(p.name for p in (local / "r1").iterdir()) == ["config.json", "log.csv", "model.weights.h5"]
    assert (local / "r1" / "config.json").read_text() == '{"model": "vgg16"}'
    assert (local / "r1" / "model.weights.h5").stat().st_size > 2**20  # the new 2 MiB weights
    assert sorted(p.name for p in local.iterdir()) == ["r0", "r1"]  # nothing moved aside is left
    assert tree(local / "r0") == untouched


def test_a_failure_while_placing_puts_every_folder_back(tmp_path, monkeypatch):
    local = tmp_path / "runs"
    fake_run(local / "r1", megabytes=1)
    before = tree(local)
    pieces = tar_pieces(tmp_path / "call", [("runs/r1/config.json", b"new"), ("runs/r2/config.json", b"new")])
    rename = os.rename

    def failing(source, dest):
        if Path(dest) == local / "r2":
            raise OSError("disk gone")
        rename(source, dest)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="disk gone"):
        gpu_transfer.unpack_runs(pieces, local, replace=True)
    assert tree(local) == before  # r1 back as it was (not the new one), no r2, no scratch


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("recorded", [True, False], ids=["chunk-sha256", "older-manifest"])
def test_a_damaged_chunk_is_named_and_nothing_is_written(small_npz, tmp_path, capsys, damage, recorded):
    path, _ = small_npz
    gpu_transfer.pack_data(path, tmp_path / "gpu", parts=2, workers=1)
    parts = sorted((tmp_path / "gpu").iterdir())
    chunk = sorted(parts[0].glob("*.xz"))[0]
    blob = bytearray(chunk.read_bytes())
    if damage == "truncated":
        del blob[len(blob) // 2 :]
    else:
        blob[len(blob) // 2] ^= 0x10
    chunk.write_bytes(bytes(blob))
    if not recorded:  # manifests packed before chunk sizes and digests were recorded
        manifest = json.loads((parts[-1] / "manifest.json").read_text())
        for entry in manifest["chunks"]:
            del entry["bytes"], entry["sha256"]
        (parts[-1] / "manifest.json").write_text(json.dumps(manifest))
    what = "truncated" if damage == "truncated" else "corrupt: sha256 mismatch" if recorded else "corrupt"
    out = tmp_path / "out" / "cifar10.npz"
    with pytest.raises(ValueError, match=re.escape(f"chunk {chunk} is {what}")):
        gpu_transfer.unpack_data(parts, out, workers=1)
    assert not (tmp_path / "out").exists()
    assert gpu_transfer.main(["unpack-data", *map(str, parts), "--out", str(out), "--workers", "1"]) == 1
    assert f"chunk {chunk} is {what}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_data_outputs_refuse_an_existing_target_unless_replace(small_npz, tmp_path):
    path, arrays = small_npz
    gpu = tmp_path / "gpu"
    gpu_transfer.pack_data(path, gpu, parts=2, workers=1)
    (gpu / "b" / "expected.json").write_text("{}")
    before = tree(gpu)
    with pytest.raises(FileExistsError, match=f"--out {re.escape(str(gpu))} already exists.*--replace"):
        gpu_transfer.pack_data(path, gpu, parts=3, workers=1)
    assert tree(gpu) == before
    with pytest.raises(ValueError, match="--parts must be"):
        gpu_transfer.pack_data(path, tmp_path / "other", parts=0, workers=1)
    gpu_transfer.pack_data(path, gpu, parts=3, workers=1, replace=True)
    assert sorted(p.name for p in gpu.iterdir()) == ["a", "b", "c"]  # the whole folder: no stale expected.json
    assert not (gpu / "b" / "expected.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar10.npz", "gpu"]  # no scratch left
    out = tmp_path / "data.npz"
    out.write_bytes(b"mine")
    parts = sorted(gpu.iterdir())
    with pytest.raises(FileExistsError, match="--out .*data.npz already exists"):
        gpu_transfer.unpack_data(parts, out, workers=1)
    assert out.read_bytes() == b"mine"
    gpu_transfer.unpack_data(parts, out, workers=1, replace=True)
    assert np.array_equal(np.load(out)["x_train"], arrays["x_train"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar10.npz", "data.npz", "gpu"]


def test_pack_runs_and_fetch_refuse_existing_pieces_unless_replace(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_transfer, "PIECE_BYTES", 2**20)
    monkeypatch.setattr(gpu_transfer, "PIECES_PER_CALL", 2)
    run = fake_run(tmp_path / "runs" / "r1", megabytes=3)
    pieces, call1 = tmp_path / "pieces", tmp_path / "call1"
    gpu_transfer.pack_runs([run], pieces, call1)
    kept, sent = tree(pieces), tree(call1)
    with pytest.raises(FileExistsError, match="--pieces .*pieces already exists"):
        gpu_transfer.pack_runs([run], pieces, tmp_path / "call2")
    assert tree(pieces) == kept and not (tmp_path / "call2").exists()
    with pytest.raises(FileExistsError, match="already holds runs.tar.00, runs.tar.01, runs.tar.sha256"):
        gpu_transfer.fetch(pieces, 0, call1)
    assert tree(call1) == sent
    with pytest.raises(NotADirectoryError, match="runs: .*missing is not a folder"):
        gpu_transfer.pack_runs([tmp_path / "missing"], tmp_path / "p2", tmp_path / "c2")
    small = fake_run(tmp_path / "other" / "r1", megabytes=1)
    gpu_transfer.pack_runs([small], pieces, call1, replace=True)
    assert sorted(p.name for p in pieces.iterdir()) == ["runs.tar.00", "runs.tar.sha256"]  # no stale pieces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call1", "other", "pieces", "runs"]  # no scratch
    assert not any(p.name.startswith(".") for p in call1.iterdir())
    gpu_transfer.unpack_runs([call1 / "runs.tar.00"], tmp_path / "back")
    assert (tmp_path / "back" / "r1" / "config.json").read_text() == '{"model": "resnet20"}'
