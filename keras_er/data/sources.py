"""Where datasets come from: tensorflow-datasets first, then offline copies.

Offline copies, in order: `<name>.npz` (x_train/y_train/x_test/y_test) in
`$KERAS_ER_DATA`; the Keras cache that `keras.datasets.<name>.load_data()`
leaves in `~/.keras/datasets`; for Fashion-MNIST the IDX files of Debian's
`dataset-fashion-mnist` package. This is the one module that may import
tensorflow_datasets (optional).
"""

import gzip
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from keras_er.data.specs import DATASET_SPECS
from keras_er.data.specs import get_spec

DATASETS = tuple(DATASET_SPECS)  # the built-in ones; `register_dataset` adds more
SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE = Path.home() / ".keras" / "datasets"


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place looked."""


def load_arrays(name, split, data_dir=None):
    """`(images uint8 NHWC, labels int64)` of `name`/`split` from the first source that has it.

    The arrays are validated against the dataset's spec (see `validate_arrays`).
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown `split` {split!r}; expected one of {', '.join(SPLITS)}.")
    looked = []
    for source in (_from_tfds, _from_npz, _from_keras_cache, _from_idx):
        found = source(name, split, data_dir, looked)
        if found is not None:
            return validate_arrays(*found, spec, where=f"{looked[-1]} ({split})")
    raise DatasetNotFoundError(
        f"Dataset {name!r} ({split}) not found. Looked in:\n  - "
        + "\n  - ".join(looked)
        + f"\nProvide it by: `pip install tensorflow-datasets` with internet access; or "
        f"an npz with x_train/y_train/x_test/y_test at $KERAS_ER_DATA/{name}.npz; or "
        f"keras.datasets.{name}.load_data() once online"
        + ("; or `apt-get install dataset-fashion-mnist`." if name == "fashion_mnist" else ".")
    )


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
            raise ValueError(f"{where}: images must be uint8 pixels 0-255; got {images.dtype} "
                             "with values outside 0-255.")
        images = images.astype(np.uint8)
    if images.shape[1:] != tuple(spec.shape):
        raise ValueError(f"{where}: images must have shape (N, {', '.join(map(str, spec.shape))}) "
                         f"for {spec.name}; got {images.shape}.")
    whole = labels.dtype.kind in "iu" or (
        labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels) & (labels == np.round(labels))))
    )
    if not whole:
        raise ValueError(f"{where}: labels must be whole numbers (class indices); got {labels.dtype}.")
    labels = labels.reshape(-1).astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels.")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.classes):
        raise ValueError(f"{where}: labels must be in [0, {spec.classes}) for {spec.name}; got "
                         f"values from {labels.min()} to {labels.max()}.")
    return np.ascontiguousarray(images), labels


def _from_tfds(name, split, data_dir, looked):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        looked.append("tensorflow-datasets (not installed)")
        return None
    try:
        data = tfds.load(
            name, split=split, data_dir=data_dir, download=False,
            batch_size=-1, as_supervised=True,
        )
    except Exception as error:  # tfds raises many kinds when data is absent
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
        raise ValueError(f"{path} is not a readable npz file ({type(error).__name__}: "
                         f"{error}).") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an npz with x_train, y_train, "
                         "x_test, y_test.")
    with data:
        missing = [key for key in (f"x_{split}", f"y_{split}") if key not in data.files]
        if missing:
            raise ValueError(f"{path} has no {' or '.join(missing)} array (expected x_train, "
                             "y_train, x_test, y_test).")
        try:
            return data[f"x_{split}"], data[f"y_{split}"]
        except unreadable as error:
            raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}).") from None


def _from_keras_cache(name, split, data_dir, looked):
    """What `keras.datasets.<name>.load_data()` leaves in ~/.keras/datasets."""
    if name == "mnist":
        return _read_npz(KERAS_CACHE / "mnist.npz", split, looked)
    if name == "fashion_mnist":
        looked.append(str(KERAS_CACHE / "fashion-mnist"))
        return _read_idx_folder(KERAS_CACHE / "fashion-mnist", split)
    if name == "cifar10":
        folder = KERAS_CACHE / "cifar-10-batches-py"
        extracted = KERAS_CACHE / "cifar-10-batches-py-target_extracted" / "cifar-10-batches-py"
        folder = extracted if extracted.is_dir() else folder  # where Keras >= 3.13 unpacks it
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key = b"labels"
    elif name == "cifar100":
        folder, files, label_key = KERAS_CACHE / "cifar-100-python", [split], b"fine_labels"
    else:
        return None
    looked.append(str(folder))
    if not all((folder / f).is_file() for f in files):
        return None
    images, labels = [], []
    for f in files:
        with open(folder / f, "rb") as handle:
            # The official CIFAR python batches are pickles of plain arrays/lists.
            batch = pickle.load(handle, encoding="bytes")
        images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key]))
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
