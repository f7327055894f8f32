"""Reading datasets from disk: npz, IDX and CIFAR pickle files, and the Keras cache layout.

One reader per format; `sources` uses them for offline copies and for what it downloads.
"""

import gzip
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np


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


def read_npz(path, split, looked):
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


def _read_cached_npz(source, split, looked):
    first = source.files[0]
    return read_npz(keras_home() / first.cache_subdir / first.fname, split, looked)


def _read_cached_idx(source, split, looked):
    folder = keras_home() / source.files[0].cache_subdir
    looked.append(str(folder))
    return read_idx_folder(folder, split)


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


CACHE_READERS = {
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


def read_idx_folder(folder, split):
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
