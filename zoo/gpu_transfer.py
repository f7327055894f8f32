"""Moving CIFAR-10 onto a lent GPU machine and the trained runs back, inside its limits.

The device tool carries at most 64 MiB per call and returns at most 8 files of
16 MiB. CIFAR-10 is 184 MB of pixels, so it travels losslessly coded (a colour
transform and the LOCO-I median predictor, then xz: about 54% of the raw size)
in chunks that two calls can carry; every decoded array is checked against the
sha256 recorded here before anything trains on it. Runs come back as one tar
(weights files rewritten without optimizer slots, with HDF5's shuffle + gzip
filters, which Keras reads as they are) cut into pieces under the file limit;
what does not fit one call's return waits on the machine for `fetch` calls.

    python zoo/gpu_transfer.py pack-data --data ../shared/data/cifar10.npz --out .gpu
    python zoo/gpu_transfer.py unpack-data .gpu/a .gpu/b --out /tmp/data/cifar10.npz
    python zoo/gpu_transfer.py pack-runs /tmp/runs/* --extra results/ --pieces /tmp/pieces --out $OUT
    python zoo/gpu_transfer.py fetch /tmp/pieces --first 4 --out $OUT   # a later call: the rest
    python zoo/gpu_transfer.py unpack-runs /work/.device/N/runs.tar.* /work/.device/M/runs.tar.* --into ../runs

Datasets are never committed: `.gpu/` is ignored and only travels to the device.
"""

import argparse
import hashlib
import io
import json
import lzma
import sys
import tarfile
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


def _decompress_chunk(job):
    path, shape = job
    return decode_images(lzma.decompress(Path(path).read_bytes()), shape)


def _map(function, jobs, workers):
    if workers == 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(function, jobs))


# --- data ---------------------------------------------------------------------------


def pack_data(data, out, parts=2, workers=2):
    """Code `data` (an npz) into chunk files spread over `parts` folders of similar size."""
    arrays = dict(np.load(data))
    out = Path(out)
    jobs = [
        (key, start, arrays[key][start : start + CHUNK_IMAGES])
        for key in IMAGE_KEYS
        for start in range(0, len(arrays[key]), CHUNK_IMAGES)
    ]
    chunks = _map(_compress_chunk, jobs, workers)
    folders = [out / chr(ord("a") + i) for i in range(parts)]
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
        folders[part].mkdir(parents=True, exist_ok=True)
        (folders[part] / name).write_bytes(blob)
        manifest["chunks"].append({"key": key, "start": start, "count": CHUNK_IMAGES, "file": name})
    labels = {key: value for key, value in arrays.items() if key not in IMAGE_KEYS}
    buffer = io.BytesIO()
    np.savez(buffer, **labels)
    (folders[-1] / "labels.npz").write_bytes(buffer.getvalue())
    (folders[-1] / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for folder, size in zip(folders, sizes):
        print(f"{folder}: {size / 2**20:.1f} MiB of chunks")


def _find(folders, name):
    for folder in folders:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise FileNotFoundError(f"{name} is in none of {', '.join(map(str, folders))}")


def unpack_data(folders, out, workers=8):
    """Decode the chunks in `folders` into the npz `out`, every array checked by sha256."""
    manifest = json.loads(_find(folders, "manifest.json").read_text())
    arrays = dict(np.load(_find(folders, "labels.npz")))
    for key in IMAGE_KEYS:
        spec = manifest["arrays"][key]
        chunks = sorted((c for c in manifest["chunks"] if c["key"] == key), key=lambda c: c["start"])
        jobs = [
            (_find(folders, c["file"]), [min(c["count"], spec["shape"][0] - c["start"])] + spec["shape"][1:])
            for c in chunks
        ]
        arrays[key] = np.concatenate(_map(_decompress_chunk, jobs, workers))
    for key, spec in manifest["arrays"].items():
        if sha256(np.ascontiguousarray(arrays[key]).tobytes()) != spec["sha256"]:
            raise ValueError(f"{key} decoded to different bytes than were packed; refusing it.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".tmp.npz")
    np.savez(temporary, **{key: arrays[key] for key in manifest["arrays"]})
    temporary.replace(out)
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


def pack_runs(runs, pieces, out, extra=()):
    """One tar of the runs' publishable files (and `extra` folders), cut into pieces in `pieces`;
    the first `PIECES_PER_CALL` are copied to `out`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for run in map(Path, runs):
            for name in KEEP_IN_RUN:
                path = run / name
                if path.is_file():
                    data = compressed_h5(path) if path.suffix == ".h5" else path.read_bytes()
                    add(f"runs/{run.name}/{name}", data)
        for folder in map(Path, extra):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                add(f"extra/{folder.name}/{path.relative_to(folder)}", path.read_bytes())
    data = buffer.getvalue()
    pieces = Path(pieces)
    pieces.mkdir(parents=True, exist_ok=True)
    for old in pieces.glob("runs.tar.*"):  # an earlier pack's pieces would mix with these
        old.unlink()
    starts = range(0, max(len(data), 1), PIECE_BYTES)
    for index, start in enumerate(starts):
        (pieces / f"runs.tar.{index:02d}").write_bytes(data[start : start + PIECE_BYTES])
    (pieces / "runs.tar.sha256").write_text(f"{sha256(data)} {len(starts)}\n")
    print(f"{pieces}: {len(data) / 2**20:.1f} MiB in {len(starts)} pieces")
    fetch(pieces, 0, out)


def fetch(pieces, first, out):
    """Copy up to `PIECES_PER_CALL` pieces from `first` (and the digest) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in Path(pieces).glob("runs.tar.[0-9]*"))
    if not 0 <= first < len(names):
        raise ValueError(f"--first {first}: {pieces} holds pieces 0..{len(names) - 1}")
    chosen = names[first : first + PIECES_PER_CALL]
    for name in [*chosen, "runs.tar.sha256"]:
        (out / name).write_bytes((Path(pieces) / name).read_bytes())
    rest = len(names) - first - len(chosen)
    print(f"{out}: pieces {first}..{first + len(chosen) - 1} of {len(names)}")
    if rest > 0:
        print(
            f"{rest} more: in the next call (within 30 s), `python3 zoo/gpu_transfer.py fetch {pieces} "
            f"--first {first + len(chosen)} --out $OUT`"
        )


def unpack_runs(pieces, into):
    """Join the pieces (from one or several fetch folders), check the sha256, extract
    runs/ into `into` and extra/ into `into`/gpu_extra."""
    pieces = sorted({Path(p).name: Path(p) for p in pieces if not str(p).endswith(".sha256")}.items())
    pieces = [path for _, path in pieces]
    if not pieces:
        raise ValueError("no runs.tar.NN pieces given")
    data = b"".join(p.read_bytes() for p in pieces)
    digest, count = (pieces[0].parent / "runs.tar.sha256").read_text().split()
    if sha256(data) != digest or len(pieces) != int(count):
        raise ValueError(f"the pieces do not join into the packed tar ({len(pieces)} of {count}); refusing them.")
    into = Path(into)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            top, _, rest = member.name.partition("/")
            target = into / rest if top == "runs" else into / "gpu_extra" / rest
            inside = target.resolve().is_relative_to(into.resolve())
            if not member.isfile() or top not in ("runs", "extra") or Path(rest).is_absolute() or not inside:
                raise ValueError(f"unexpected member {member.name!r} in the runs tar")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            print(target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack-data")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--parts", type=int, default=2)
    p = commands.add_parser("unpack-data")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", required=True)
    p = commands.add_parser("pack-runs")
    p.add_argument("runs", nargs="*")
    p.add_argument("--extra", nargs="*", default=[])
    p.add_argument("--pieces", required=True, help="folder that keeps every piece for later `fetch` calls")
    p.add_argument("--out", required=True)
    p = commands.add_parser("fetch")
    p.add_argument("pieces")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--out", required=True)
    p = commands.add_parser("unpack-runs")
    p.add_argument("pieces", nargs="+")
    p.add_argument("--into", required=True)
    args = parser.parse_args(argv)
    if args.command == "pack-data":
        pack_data(args.data, args.out, args.parts)
    elif args.command == "unpack-data":
        unpack_data(args.folders, args.out)
    elif args.command == "pack-runs":
        pack_runs(args.runs, args.pieces, args.out, args.extra)
    elif args.command == "fetch":
        fetch(args.pieces, args.first, args.out)
    else:
        unpack_runs(args.pieces, args.into)
    return 0


if __name__ == "__main__":
    sys.exit(main())
