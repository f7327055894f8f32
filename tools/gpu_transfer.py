"""Moving CIFAR-10 onto a lent GPU machine and the trained runs back, inside its limits.

The device tool carries at most 64 MiB per call and returns at most 8 files of
16 MiB. CIFAR-10 is 184 MB of pixels, so it travels losslessly coded (a colour
transform and the LOCO-I median predictor, then xz: about 54% of the raw size)
in chunks that two calls can carry; every decoded array is checked against the
sha256 recorded here before anything trains on it. Runs come back as one tar
(weights files rewritten without optimizer slots, with HDF5's shuffle + gzip
filters, which Keras reads as they are) cut into pieces under the file limit;
what does not fit one call's return waits on the machine for `fetch` calls.

    python tools/gpu_transfer.py pack-data --data ../shared/data/cifar10.npz --out .gpu
    python tools/gpu_transfer.py unpack-data .gpu/a .gpu/b --out /tmp/data/cifar10.npz
    python tools/gpu_transfer.py pack-runs /tmp/runs/* --extra results/ --pieces /tmp/pieces --out $OUT
    python tools/gpu_transfer.py fetch /tmp/pieces --first 4 --out $OUT   # a later call: the rest
    python tools/gpu_transfer.py unpack-runs /work/.device/N/runs.tar.* /work/.device/M/runs.tar.* --into ../runs

Nothing is overwritten or half-written: every output is built in a scratch folder or
file beside its target (same filesystem) and renamed into place only once complete; an
existing target is refused unless `--replace` is given, which swaps it whole (the old
one is removed only after the new one is in place). `unpack-runs` checks every tar
member before writing any, and a failure leaves `--into` as it was.

Datasets are never committed: `.gpu/` is ignored and only travels to the device.
"""

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CHUNK_IMAGES = 5000
PIECE_BYTES = 15 * 2**20
PIECES_PER_CALL = 4  # the device tool returns at most 64 MiB (and 8 files) per call
IMAGE_KEYS = ("x_train", "x_test")
KEEP_IN_RUN = ("config.json", "recipe.json", "log.csv", "summary.json", "model.weights.h5", "curves.png")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --- lossless image coding ---------------------------------------------------------


def _med_prediction(q):
    """LOCO-I median predictor from the left, upper and upper-left neighbours (0 outside)."""
    left = np.zeros_like(q)
    up = np.zeros_like(q)
    corner = np.zeros_like(q)
    left[..., 1:] = q[..., :-1]
    up[..., 1:, :] = q[..., :-1, :]
    corner[..., 1:, 1:] = q[..., :-1, :-1]
    high, low = np.maximum(left, up), np.minimum(left, up)
    return np.where(corner >= high, low, np.where(corner <= low, high, left + up - corner))


def _decorrelate(images):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) int16 planes G, R-G+128, B-G+128 (mod 256)."""
    planes = images.transpose(0, 3, 1, 2).astype(np.int16)
    red, green, blue = planes[:, 0], planes[:, 1], planes[:, 2]
    return np.stack([green, (red - green + 128) % 256, (blue - green + 128) % 256], axis=1)


def encode_images(images):
    """Residuals (uint8 bytes) of the colour-decorrelated planes after median prediction."""
    q = _decorrelate(images)
    return ((q - _med_prediction(q)) % 256).astype(np.uint8).tobytes()


def decode_images(residuals, shape):
    """Inverse of `encode_images`: rebuilds the planes pixel by pixel (vectorised over images)."""
    n, height, width, _ = shape
    r = np.frombuffer(residuals, np.uint8).reshape(n, 3, height, width).astype(np.int16)
    q = np.zeros_like(r)
    zero = np.zeros(r.shape[:2], np.int16)
    for i in range(height):
        for j in range(width):
            left = q[:, :, i, j - 1] if j else zero
            up = q[:, :, i - 1, j] if i else zero
            corner = q[:, :, i - 1, j - 1] if i and j else zero
            high, low = np.maximum(left, up), np.minimum(left, up)
            prediction = np.where(corner >= high, low, np.where(corner <= low, high, left + up - corner))
            q[:, :, i, j] = (prediction + r[:, :, i, j]) % 256
    green = q[:, 0]
    red = (q[:, 1] - 128 + green) % 256
    blue = (q[:, 2] - 128 + green) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _compress_chunk(job):
    key, start, images = job
    return key, start, lzma.compress(encode_images(images), preset=6)


def _read_chunk(path, chunk):
    """The residual bytes of the chunk file `path` (its manifest entry `chunk`), or a ValueError
    naming the file and what is wrong with it: truncated, corrupt, or not the bytes that were packed."""
    blob = Path(path).read_bytes()
    if "bytes" in chunk and len(blob) != chunk["bytes"]:  # manifests before round 3 record neither
        state = "truncated" if len(blob) < chunk["bytes"] else "longer than packed"
        raise ValueError(f"chunk {path} is {state}: {len(blob)} bytes, packed as {chunk['bytes']}; refusing it.")
    if "sha256" in chunk and sha256(blob) != chunk["sha256"]:
        raise ValueError(f"chunk {path} is corrupt: sha256 mismatch with the manifest; refusing it.")
    try:
        return lzma.decompress(blob)
    except lzma.LZMAError as error:
        state = "truncated" if "ended before" in str(error) else "corrupt"
        raise ValueError(f"chunk {path} is {state} ({error}); refusing it.") from None


def _decompress_chunk(job):
    path, shape, chunk = job
    residuals = _read_chunk(path, chunk)
    if len(residuals) != int(np.prod(shape)):
        raise ValueError(
            f"chunk {path} is corrupt: it decodes to {len(residuals)} bytes, {int(np.prod(shape))} expected "
            f"for {tuple(shape)}; refusing it."
        )
    return decode_images(residuals, shape)


def _map(function, jobs, workers):
    if workers == 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(function, jobs))


# --- writing without overwriting -----------------------------------------------------


def _occupied(path):
    """Whether `path` holds something that writing there would overwrite (an empty folder does not)."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        return True
    return path.is_dir() and any(path.iterdir())


def _scratch_folder(dest):
    """A new empty folder beside `dest` (same filesystem, so it renames into place)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))


def _remove(path):
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _place(new, dest, replace, flag):
    """Rename the finished `new` (a file or folder beside `dest`) to `dest`. Something already at
    `dest` is refused unless `replace`: then it is moved aside, and removed only once `new` is in place."""
    new, dest = Path(new), Path(dest)
    aside = None
    if _occupied(dest):
        if not replace:
            raise FileExistsError(f"{flag} {dest} already exists; pass --replace to replace it whole.")
        if dest.is_dir() and not dest.is_symlink():  # a file is replaced by the one rename below
            aside = dest.with_name(f".{dest.name}.old-{os.getpid()}-{new.name}")
            os.rename(dest, aside)
    try:
        os.replace(new, dest)  # an empty folder at `dest` is replaced; anything else was moved aside
    except BaseException:
        if aside is not None:
            os.rename(aside, dest)
        raise
    if aside is not None:
        _remove(aside)


def _write_file(path, data):
    """`data` into `path`, flushed, so that a rename publishes it whole."""
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


# --- data ---------------------------------------------------------------------------


def pack_data(data, out, parts=2, workers=2, replace=False):
    """Code `data` (an npz) into chunk files spread over `parts` folders of similar size, in the
    folder `out` (refused if it holds anything, unless `replace`)."""
    if not isinstance(parts, int) or parts < 1:
        raise ValueError(f"--parts must be a whole number of at least 1, not {parts!r}")
    out = Path(out)
    if _occupied(out) and not replace:
        raise FileExistsError(f"--out {out} already exists; pass --replace to replace it whole.")
    arrays = dict(np.load(data))
    missing = [key for key in IMAGE_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"--data {data} has no {', '.join(missing)} array")
    jobs = [
        (key, start, arrays[key][start : start + CHUNK_IMAGES])
        for key in IMAGE_KEYS
        for start in range(0, len(arrays[key]), CHUNK_IMAGES)
    ]
    chunks = _map(_compress_chunk, jobs, workers)
    scratch = _scratch_folder(out)
    try:
        folders = [scratch / chr(ord("a") + i) for i in range(parts)]
        for folder in folders:
            folder.mkdir()
        sizes = [0] * parts
        manifest = {"arrays": {}, "chunks": []}
        for key, value in arrays.items():
            manifest["arrays"][key] = {
                "shape": list(value.shape),
                "dtype": str(value.dtype),
                "sha256": sha256(value.tobytes()),
            }
        for key, start, blob in sorted(chunks, key=lambda c: -len(c[2])):
            part = sizes.index(min(sizes))
            sizes[part] += len(blob)
            name = f"{key}-{start:05d}.xz"
            _write_file(folders[part] / name, blob)
            manifest["chunks"].append(
                {
                    "key": key,
                    "start": start,
                    "count": CHUNK_IMAGES,
                    "file": name,
                    "bytes": len(blob),
                    "sha256": sha256(blob),
                }
            )
        labels = {key: value for key, value in arrays.items() if key not in IMAGE_KEYS}
        buffer = io.BytesIO()
        np.savez(buffer, **labels)
        _write_file(folders[-1] / "labels.npz", buffer.getvalue())
        _write_file(folders[-1] / "manifest.json", json.dumps(manifest, indent=1).encode())
        _place(scratch, out, replace, "--out")
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    for index, size in enumerate(sizes):
        print(f"{out / chr(ord('a') + index)}: {size / 2**20:.1f} MiB of chunks")


def _find(folders, name):
    for folder in folders:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise FileNotFoundError(f"{name} is in none of {', '.join(map(str, folders))}")


def unpack_data(folders, out, workers=8, replace=False):
    """Decode the chunks in `folders` into the npz `out`, every chunk and array checked by sha256;
    nothing is written at `out` unless all of them pass (an existing `out` is refused unless `replace`)."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a whole number of at least 1, not {workers!r}")
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the npz file to write.")
    if _occupied(out) and not replace:
        raise FileExistsError(f"--out {out} already exists; pass --replace to replace it.")
    path = _find(folders, "manifest.json")
    try:
        manifest = json.loads(path.read_text())
        arrays = dict(np.load(_find(folders, "labels.npz")))
    except (ValueError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path.parent}: unreadable manifest.json or labels.npz ({error}); refusing it.") from None
    for key in IMAGE_KEYS:
        spec = manifest["arrays"][key]
        chunks = sorted((c for c in manifest["chunks"] if c["key"] == key), key=lambda c: c["start"])
        jobs = [
            (_find(folders, c["file"]), [min(c["count"], spec["shape"][0] - c["start"])] + spec["shape"][1:], c)
            for c in chunks
        ]
        arrays[key] = np.concatenate(_map(_decompress_chunk, jobs, workers))
    for key, spec in manifest["arrays"].items():
        if key not in arrays or sha256(np.ascontiguousarray(arrays[key]).tobytes()) != spec["sha256"]:
            raise ValueError(f"{key} decoded to different bytes than were packed; refusing it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.tmp-", suffix=".npz", delete=False) as f:
        temporary = Path(f.name)
        try:
            np.savez(f, **{key: arrays[key] for key in manifest["arrays"]})
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            temporary.unlink()
            raise
    try:
        _place(temporary, out, replace, "--out")
    finally:
        if temporary.exists():
            temporary.unlink()
    print(f"{out}: {', '.join(f'{k} {tuple(v.shape)}' for k, v in arrays.items())}, sha256 checked")


# --- runs ---------------------------------------------------------------------------


def compressed_h5(path):
    """The bytes of `path` rewritten with shuffle + gzip on every array dataset, optimizer slots left out."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(path, "r") as source, h5py.File(buffer, "w") as target:
        target.attrs.update(source.attrs)

        def copy(name, item):
            if name.split("/")[0] == "optimizer":  # not needed to export; doubles a dense file
                return
            if isinstance(item, h5py.Group):
                target.require_group(name).attrs.update(item.attrs)
                return
            filters = {"shuffle": True, "compression": "gzip", "compression_opts": 6} if item.ndim else {}
            target.create_dataset(name, data=item[()], **filters).attrs.update(item.attrs)

        source.visititems(copy)
    return buffer.getvalue()


def pack_runs(runs, pieces, out, extra=(), replace=False):
    """One tar of the runs' publishable files (and `extra` folders), cut into pieces in the folder
    `pieces` (refused if it holds anything, unless `replace`); the first `PIECES_PER_CALL` are copied to `out`."""
    runs, extra, pieces = list(map(Path, runs)), list(map(Path, extra)), Path(pieces)
    for flag, folders in (("runs", runs), ("--extra", extra)):
        for folder in folders:
            if not folder.is_dir():
                raise NotADirectoryError(f"{flag}: {folder} is not a folder")
        names = [folder.name for folder in folders]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{flag}: two folders named {', '.join(twice)} would land in one place")
    if _occupied(pieces) and not replace:
        raise FileExistsError(f"--pieces {pieces} already exists; pass --replace to replace it whole.")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for run in runs:
            for name in KEEP_IN_RUN:
                path = run / name
                if path.is_file():
                    data = compressed_h5(path) if path.suffix == ".h5" else path.read_bytes()
                    add(f"runs/{run.name}/{name}", data)
        for folder in extra:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                add(f"extra/{folder.name}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    data = buffer.getvalue()
    starts = range(0, max(len(data), 1), PIECE_BYTES)
    scratch = _scratch_folder(pieces)
    try:
        for index, start in enumerate(starts):
            _write_file(scratch / f"runs.tar.{index:02d}", data[start : start + PIECE_BYTES])
        _write_file(scratch / "runs.tar.sha256", f"{sha256(data)} {len(starts)}\n".encode())
        _place(scratch, pieces, replace, "--pieces")
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    print(f"{pieces}: {len(data) / 2**20:.1f} MiB in {len(starts)} pieces")
    fetch(pieces, 0, out, replace)


def fetch(pieces, first, out, replace=False):
    """Copy up to `PIECES_PER_CALL` pieces from `first` (and the digest) into `out`; a piece already
    in `out` is refused unless `replace`. Each file is copied to scratch inside `out`, then renamed."""
    pieces, out = Path(pieces), Path(out)
    names = sorted(p.name for p in pieces.glob("runs.tar.[0-9]*"))
    if not names or not (pieces / "runs.tar.sha256").is_file():
        raise FileNotFoundError(f"{pieces} holds no runs.tar.NN pieces and runs.tar.sha256")
    if not isinstance(first, int) or not 0 <= first < len(names):
        raise ValueError(f"--first {first}: {pieces} holds pieces 0..{len(names) - 1}")
    chosen = names[first : first + PIECES_PER_CALL]
    copied = [*chosen, "runs.tar.sha256"]
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is not a folder")
    there = [name for name in copied if (out / name).exists() or (out / name).is_symlink()]
    if there and not replace:
        raise FileExistsError(f"--out {out} already holds {', '.join(there)}; pass --replace to replace them.")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out, prefix=".fetch.tmp-"))
    try:
        for name in copied:
            _write_file(scratch / name, (pieces / name).read_bytes())
        for name in copied:
            os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch)
    rest = len(names) - first - len(chosen)
    print(f"{out}: pieces {first}..{first + len(chosen) - 1} of {len(names)}")
    if rest > 0:
        print(
            f"{rest} more: in the next call (within 30 s), `python3 tools/gpu_transfer.py fetch {pieces} "
            f"--first {first + len(chosen)} --out $OUT`"
        )


def _member_destination(member):
    """(unit, path inside unit) for a tar member: runs/RUN/... -> ("RUN", ...), extra/F/... ->
    ("gpu_extra/F", ...); a ValueError for anything else (links, folders, absolute or `..` paths)."""
    parts = member.name.split("/")
    top, unit, rest = parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
    if (
        not member.isreg()
        or top not in ("runs", "extra")
        or not rest
        or any(part in ("", ".", "..") or "\\" in part for part in [unit, *rest])
    ):
        raise ValueError(f"unexpected member {member.name!r} in the runs tar (nothing was written)")
    if top == "runs" and unit == "gpu_extra":
        raise ValueError(f"member {member.name!r}: a run may not be named gpu_extra (nothing was written)")
    return (unit if top == "runs" else f"gpu_extra/{unit}"), "/".join(rest)


def unpack_runs(pieces, into, replace=False):
    """Join the pieces (from one or several fetch folders), check the sha256, extract
    runs/ into `into` and extra/ into `into`/gpu_extra.

    Every member is checked before anything is written; a run (or extra) folder that already
    exists in `into` is refused unless `replace`, which swaps it whole. The tar is extracted into
    a scratch folder inside `into` and each folder renamed into place only when all succeeded;
    a failure leaves `into` as it was."""
    pieces = sorted({Path(p).name: Path(p) for p in pieces if not str(p).endswith(".sha256")}.items())
    pieces = [path for _, path in pieces]
    if not pieces:
        raise ValueError("no runs.tar.NN pieces given")
    data = b"".join(p.read_bytes() for p in pieces)
    digest, count = (pieces[0].parent / "runs.tar.sha256").read_text().split()
    if sha256(data) != digest or len(pieces) != int(count):
        raise ValueError(f"the pieces do not join into the packed tar ({len(pieces)} of {count}); refusing them.")
    into = Path(into)
    if into.exists() and not into.is_dir():
        raise NotADirectoryError(f"--into {into} is not a folder")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        units, seen = {}, set()
        for member in members:
            unit, rest = _member_destination(member)
            if (unit, rest) in seen:
                raise ValueError(f"member {member.name!r} is in the runs tar twice (nothing was written)")
            seen.add((unit, rest))
            units.setdefault(unit, []).append((member, rest))
        there = [unit for unit in units if (into / unit).exists() or (into / unit).is_symlink()]
        if there and not replace:
            raise FileExistsError(
                f"--into {into} already holds {', '.join(there)} (in this tar); nothing was written. "
                "Pass --replace to replace each of them whole."
            )
        extra_root = into / "gpu_extra"
        if any(unit.startswith("gpu_extra/") for unit in units) and (
            extra_root.is_symlink() or (extra_root.exists() and not extra_root.is_dir())
        ):
            raise ValueError(f"--into {into}: gpu_extra is not a folder of its own; nothing was written.")
        created = [p for p in [into, *into.parents] if not p.exists()]  # removed again on failure
        into.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=into, prefix=".unpack-runs.tmp-"))
        placed, made_extra_root = [], False
        try:
            for index, files in enumerate(units.values()):
                for member, rest in files:
                    target = scratch / "new" / str(index) / rest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _write_file(target, tar.extractfile(member).read())
            (scratch / "old").mkdir()
            for index, unit in enumerate(units):
                dest = into / unit
                if unit.startswith("gpu_extra/") and not extra_root.exists():
                    extra_root.mkdir()
                    made_extra_root = True
                aside = None
                if dest.exists() or dest.is_symlink():
                    if not replace:
                        raise FileExistsError(f"--into {into}: {unit} appeared while unpacking; nothing was kept.")
                    aside = scratch / "old" / str(index)
                    os.rename(dest, aside)
                try:
                    os.rename(scratch / "new" / str(index), dest)
                except BaseException:
                    if aside is not None:
                        os.rename(aside, dest)
                    raise
                placed.append((dest, index, aside))
        except BaseException:
            for dest, index, aside in reversed(placed):  # back to exactly what was there
                os.rename(dest, scratch / "new" / str(index))
                if aside is not None:
                    os.rename(aside, dest)
            shutil.rmtree(scratch)
            if made_extra_root:
                extra_root.rmdir()
            for folder in created:  # deepest first
                folder.rmdir()
            raise
        shutil.rmtree(scratch)  # the replaced folders go only now, with the new ones in place
    for dest, _, aside in placed:
        print(f"{dest}{' (replaced)' if aside is not None else ''}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack-data")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--parts", type=int, default=2)
    p.add_argument("--replace", action="store_true", help="replace an existing --out whole")
    p = commands.add_parser("unpack-data")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--replace", action="store_true", help="replace an existing --out")
    p.add_argument("--workers", type=int, default=8, help="processes decoding chunks")
    p = commands.add_parser("pack-runs")
    p.add_argument("runs", nargs="*")
    p.add_argument("--extra", nargs="*", default=[])
    p.add_argument("--pieces", required=True, help="folder that keeps every piece for later `fetch` calls")
    p.add_argument("--out", required=True)
    p.add_argument("--replace", action="store_true", help="replace an existing --pieces whole, and pieces in --out")
    p = commands.add_parser("fetch")
    p.add_argument("pieces")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--replace", action="store_true", help="replace pieces already in --out")
    p = commands.add_parser("unpack-runs")
    p.add_argument("pieces", nargs="+")
    p.add_argument("--into", required=True)
    p.add_argument("--replace", action="store_true", help="replace run folders already in --into, each whole")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack-data":
            pack_data(args.data, args.out, args.parts, replace=args.replace)
        elif args.command == "unpack-data":
            unpack_data(args.folders, args.out, args.workers, replace=args.replace)
        elif args.command == "pack-runs":
            pack_runs(args.runs, args.pieces, args.out, args.extra, replace=args.replace)
        elif args.command == "fetch":
            fetch(args.pieces, args.first, args.out, replace=args.replace)
        else:
            unpack_runs(args.pieces, args.into, replace=args.replace)
    except (ValueError, OSError, tarfile.TarError) as error:
        print(f"gpu_transfer.py {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
