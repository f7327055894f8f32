"""Where datasets come from: offline copies first, then a download through Keras.

Sources, in order: tensorflow-datasets (if installed, never downloading);
`<name>.npz` (x_train/y_train/x_test/y_test) in `$KERAS_ER_DATA`; the Keras
cache that `keras.datasets.<name>.load_data()` leaves in `$KERAS_HOME/datasets`
(default `~/.keras/datasets`); for Fashion-MNIST the IDX files of Debian's
`dataset-fashion-mnist` package. When none has the dataset and `download` is
true, its spec's `DownloadSource` is fetched with `keras.utils.get_file` (same
URLs, hashes and cache layout as `keras.datasets`, with a progress bar and a
hash check) and read back by the Keras-cache reader.

Environment:
    KERAS_ER_DATA: folder of `<name>.npz` files.
    KERAS_HOME: the Keras cache root, read at each call (Keras itself reads it
        once, at import).
    KERAS_ER_DOWNLOAD_BASE: a mirror (URL such as `https://host/path` or
        `file:///folder`, or a plain local folder) that holds the files under
        their original names; downloads come from there instead.

This is the one module that may import tensorflow_datasets (optional).
"""

import gzip
import os
import pickle
import shutil
import tempfile
import urllib.parse
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_er.data.specs import (
    DATASETS,  # noqa: F401 (a live view, re-exported)
    get_spec,
)

SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place looked."""


class DatasetDownloadError(DatasetNotFoundError):
    """The download failed (network, hash, archive); the message names the URL and the cause.

    A `DatasetNotFoundError`, so code that skips or falls back when a dataset
    is unavailable offline keeps doing so when the download cannot happen.
    """


def load_arrays(name, split, data_dir=None, download=True):
    """`(images uint8 NHWC, labels int64)` of `name`/`split` from the first source that has it.

    Args:
        name: a registered dataset name.
        split: "train" or "test".
        data_dir: tensorflow-datasets `data_dir`.
        download: when no offline source has it, download it into the Keras
            cache (once; later calls read the cache). False: never touch the
            network and raise `DatasetNotFoundError`.

    The arrays are validated against the dataset's spec (see `validate_arrays`).

    Raises:
        DatasetNotFoundError: no source has it (listing every place looked).
        DatasetDownloadError: the download failed; nothing is left in the cache.
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown `split` {split!r}; expected one of {', '.join(SPLITS)}.")
    if not isinstance(download, bool):
        raise TypeError(f"`download` must be True or False; got {download!r}.")
    looked = []
    found = _from_offline_copies(name, split, data_dir, looked)
    if found is None and download and spec.download is not None:
        found = _download_and_read(spec, split, looked)
    if found is None:
        raise DatasetNotFoundError(_not_found_message(spec, split, looked, download))
    return validate_arrays(*found, spec, where=f"{looked[-1]} ({split})")


def _from_offline_copies(name, split, data_dir, looked):
    """The first offline source's `(images, labels)`, or None; each appends where it looked."""
    for source in (_from_tfds, _from_npz, _from_keras_cache, _from_idx):
        found = source(name, split, data_dir, looked)
        if found is not None:
            return found
    return None


def _not_found_message(spec, split, looked, download):
    ways = [
        "`pip install tensorflow-datasets` with internet access",
        f"an npz with x_train/y_train/x_test/y_test at $KERAS_ER_DATA/{spec.name}.npz",
    ]
    if spec.download is not None and not download:
        urls = ", ".join(download_url(f.origin) for f in spec.download.files)
        ways.append(f"download=True, which downloads {urls} into {keras_home()}")
    if spec.name == "fashion_mnist":
        ways.append("`apt-get install dataset-fashion-mnist`")
    return (
        f"Dataset {spec.name!r} ({split}) not found. Looked in:\n  - "
        + "\n  - ".join(looked)
        + "\nProvide it by: "
        + "; or ".join(ways)
        + "."
    )


def keras_home():
    """The Keras cache root, chosen as Keras chooses it: `$KERAS_HOME`, else `~/.keras`.

    (`/tmp/.keras` when the home folder is read-only, as in Keras.) Read at
    each call rather than once at import like Keras, so a script or test that
    sets KERAS_HOME later is honoured; downloads pass it to `get_file`.
    """
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"]).expanduser()
    base = os.path.expanduser("~")
    return Path(base if os.access(base, os.W_OK) else "/tmp") / ".keras"


def download_url(origin):
    """`origin`, or the same file name under `$KERAS_ER_DOWNLOAD_BASE` when that is set."""
    base = os.environ.get("KERAS_ER_DOWNLOAD_BASE", "").strip()
    if not base:
        return origin
    if "://" not in base:  # a local folder
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/") + "/" + urllib.parse.urlsplit(origin).path.rsplit("/", 1)[-1]


def _download_and_read(spec, split, looked):
    _download(spec, split, looked)
    found = _from_keras_cache(spec.name, split, None, looked)
    if found is None:
        raise DatasetNotFoundError(
            f"Downloaded {spec.name!r} into {keras_home()}, but its {split} split is not where "
            f"the {spec.download.format!r} reader looks; looked in:\n  - " + "\n  - ".join(looked)
        )
    return found


def _download(spec, split, looked):
    """Fetch every file of `spec.download` with `keras.utils.get_file`, all or nothing.

    `get_file` writes straight to the final name and keeps a file whose hash
    does not match, so it works in a scratch folder inside `keras_home()`;
    only when every file is fetched and verified are they renamed (same file
    system, so atomically) into the layout `get_file` would have made there.
    A failure or an interrupt leaves nothing behind.
    """
    home = keras_home()
    home.mkdir(parents=True, exist_ok=True)  # get_file swaps a missing folder for /tmp/.keras
    scratch = Path(tempfile.mkdtemp(prefix=".keras_er-download-", dir=home))
    try:
        for remote in spec.download.files:
            url = download_url(remote.origin)
            try:
                keras.utils.get_file(
                    fname=remote.fname,
                    origin=url,
                    file_hash=remote.file_hash,
                    cache_subdir=remote.cache_subdir,
                    extract=remote.extract,
                    cache_dir=str(scratch),
                )
            except Exception as error:  # get_file raises bare Exception for network errors
                raise DatasetDownloadError(
                    f"Could not download dataset {spec.name!r} from {url}: "
                    f"{type(error).__name__}: {error}\nNothing was left in {home}. "
                    "Retry online, set $KERAS_ER_DOWNLOAD_BASE to a mirror, or provide it offline.\n"
                    + _not_found_message(spec, split, looked, download=True)
                ) from error
        _move_into(scratch, home)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _move_into(scratch, home):
    """Move every file under `scratch` to the same relative place under `home`."""
    for path in sorted(scratch.rglob("*")):
        if path.is_file() and not path.is_symlink():
            target = home / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def validate_arrays(images, labels, spec, where):
    """Check images are uint8 pixels of the spec's shape and labels are classes; return them.

    Raises:
        ValueError: naming `where` and what is wrong (float pixels, values over
            255, another image shape, labels outside [0, classes), a length mismatch).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3 and spec.shape[-1] == 1:
        images = images[..., None]
    if images.dtype != np.uint8:
        if images.dtype.kind == "f":
            low, high = (float(images.min()), float(images.max())) if images.size else (0, 0)
            raise ValueError(
                f"{where}: images must be uint8 pixels 0-255; got {images.dtype} in "
                f"[{low:g}, {high:g}]" + (" (scale by 255 and cast to uint8)" if high <= 1 else "") + "."
            )
        if images.dtype.kind not in "iu" or (images.size and (images.min() < 0 or images.max() > 255)):
            raise ValueError(
                f"{where}: images must be uint8 pixels 0-255; got {images.dtype} with values outside 0-255."
            )
        images = images.astype(np.uint8)
    if images.shape[1:] != tuple(spec.shape):
        raise ValueError(
            f"{where}: images must have shape (N, {', '.join(map(str, spec.shape))}) "
            f"for {spec.name}; got {images.shape}."
        )
    whole = labels.dtype.kind in "iu" or (
        labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels) & (labels == np.round(labels))))
    )
    if not whole:
        raise ValueError(f"{where}: labels must be whole numbers (class indices); got {labels.dtype}.")
    labels = labels.reshape(-1).astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels.")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.classes):
        raise ValueError(
            f"{where}: labels must be in [0, {spec.classes}) for {spec.name}; got "
            f"values from {labels.min()} to {labels.max()}."
        )
    return np.ascontiguousarray(images), labels


def _from_tfds(name, split, data_dir, looked):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        looked.append("tensorflow-datasets (not installed)")
        return None
    try:
        data = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=False,
            batch_size=-1,
            as_supervised=True,
        )
    except Exception as error:  # noqa: BLE001 (tfds raises many kinds when data is absent)
        looked.append(f"tensorflow-datasets data_dir={data_dir or '(default)'} ({type(error).__name__})")
        return None
    looked.append(f"tensorflow-datasets data_dir={data_dir or '(default)'}")
    return tfds.as_numpy(data)


def _from_npz(name, split, data_dir, looked):
    folder = os.environ.get("KERAS_ER_DATA")
    if not folder:
        looked.append("$KERAS_ER_DATA (not set)")
        return None
    return _read_npz(Path(folder) / f"{name}.npz", split, looked)


def _read_npz(path, split, looked):
    looked.append(str(path))
    if not path.is_file():
        return None
    unreadable = (zipfile.BadZipFile, ValueError, EOFError, OSError)
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as error:
        raise ValueError(f"{path} is not a readable npz file ({type(error).__name__}: {error}).") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a wrong file, not a wrong argument type
        raise ValueError(  # noqa: TRY004
            f"{path} is a single .npy array, not an npz with x_train, y_train, x_test, y_test."
        )
    with data:
        missing = [key for key in (f"x_{split}", f"y_{split}") if key not in data.files]
        if missing:
            raise ValueError(f"{path} has no {' or '.join(missing)} array (expected x_train, y_train, x_test, y_test).")
        try:
            return data[f"x_{split}"], data[f"y_{split}"]
        except unreadable as error:
            raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}).") from None


def _from_keras_cache(name, split, data_dir, looked):
    """What `keras.datasets.<name>.load_data()`, or a download here, leaves in `keras_home()`."""
    source = get_spec(name).download
    if source is None:
        return None
    return _CACHE_READERS[source.format](source, split, looked)


def _read_cached_npz(source, split, looked):
    first = source.files[0]
    return _read_npz(keras_home() / first.cache_subdir / first.fname, split, looked)


def _read_cached_idx(source, split, looked):
    folder = keras_home() / source.files[0].cache_subdir
    looked.append(str(folder))
    return _read_idx_folder(folder, split)


# format: (folder inside the archive, batch files of each split, label key)
_CIFAR_LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        b"labels",
    ),
    "cifar100": ("cifar-100-python", {"train": ("train",), "test": ("test",)}, b"fine_labels"),
}


def _read_cached_cifar(source, split, looked):
    inner, batches, label_key = _CIFAR_LAYOUTS[source.format]
    for folder in _cifar_folders(source.files[0], inner):
        looked.append(str(folder))
        if all((folder / f).is_file() for f in batches[split]):
            return read_cifar_batches([folder / f for f in batches[split]], label_key)
    return None


def _cifar_folders(first, inner):
    """Where Keras releases unpack a CIFAR archive: `<fname>/` (Keras 3.15),
    `<fname>_extracted/` (other Keras 3 releases) or the cache itself (Keras 2)."""
    cache = keras_home() / first.cache_subdir
    return cache / first.fname / inner, cache / f"{first.fname}_extracted" / inner, cache / inner


_CACHE_READERS = {
    "npz": _read_cached_npz,
    "idx": _read_cached_idx,
    "cifar10": _read_cached_cifar,
    "cifar100": _read_cached_cifar,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches hold (dicts, lists, bytes, numpy arrays).

    A downloaded or mirrored file is data: refusing every other global means a
    tampered pickle cannot run code (as Keras' own CIFAR loader does).
    """

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def read_cifar_batches(paths, label_key):
    """`(images uint8 NHWC, labels)` of the official CIFAR python batches at `paths`."""
    images, labels = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                batch = _ArrayUnpickler(handle, encoding="bytes").load()
            images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[label_key]))
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{path} is not a CIFAR batch with {label_key.decode()} ({type(error).__name__}: {error})."
            ) from None
    return np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)


def _from_idx(name, split, data_dir, looked):
    if name != "fashion_mnist":
        return None
    looked.append(str(DEBIAN_FASHION_MNIST))
    return _read_idx_folder(DEBIAN_FASHION_MNIST, split)


def _read_idx_folder(folder, split):
    prefix = "train" if split == "train" else "t10k"
    images = Path(folder) / f"{prefix}-images-idx3-ubyte.gz"
    labels = Path(folder) / f"{prefix}-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    return read_idx(images), read_idx(labels)


def read_idx(path):
    """Read a (gzipped) IDX file of unsigned bytes into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected shape {shape}.")
    return array.reshape(shape)
