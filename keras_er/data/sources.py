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
from pathlib import Path

import numpy as np

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist")
SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE = Path.home() / ".keras" / "datasets"


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place looked."""


def load_arrays(name, split, data_dir=None):
    """`(images uint8 NHWC, labels int64)` of `name`/`split` from the first source that has it."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown `split` {split!r}; expected one of {', '.join(SPLITS)}.")
    looked = []
    for source in (_from_tfds, _from_npz, _from_keras_cache, _from_idx):
        found = source(name, split, data_dir, looked)
        if found is not None:
            x, y = found
            if x.ndim == 3:
                x = x[..., None]
            return np.ascontiguousarray(x, dtype=np.uint8), np.asarray(y, np.int64).ravel()
    raise DatasetNotFoundError(
        f"Dataset {name!r} ({split}) not found. Looked in:\n  - "
        + "\n  - ".join(looked)
        + f"\nProvide it by: `pip install tensorflow-datasets` with internet access; or "
        f"an npz with x_train/y_train/x_test/y_test at $KERAS_ER_DATA/{name}.npz; or "
        f"keras.datasets.{name}.load_data() once online"
        + ("; or `apt-get install dataset-fashion-mnist`." if name == "fashion_mnist" else ".")
    )


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
    with np.load(path, allow_pickle=False) as data:
        return data[f"x_{split}"], data[f"y_{split}"]


def _from_keras_cache(name, split, data_dir, looked):
    """What `keras.datasets.<name>.load_data()` leaves in ~/.keras/datasets."""
    if name == "mnist":
        return _read_npz(KERAS_CACHE / "mnist.npz", split, looked)
    if name == "fashion_mnist":
        looked.append(str(KERAS_CACHE / "fashion-mnist"))
        return _read_idx_folder(KERAS_CACHE / "fashion-mnist", split)
    if name == "cifar10":
        folder = KERAS_CACHE / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key = b"labels"
    else:
        folder, files, label_key = KERAS_CACHE / "cifar-100-python", [split], b"fine_labels"
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
