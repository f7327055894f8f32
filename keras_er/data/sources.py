"""Where datasets come from: offline copies first, then a download.

Sources, in order: tensorflow-datasets (if installed, never downloading);
`<name>.npz` (x_train/y_train/x_test/y_test) in `$KERAS_ER_DATA`; the Keras
cache that `keras.datasets.<name>.load_data()` leaves in `$KERAS_HOME/datasets`
(default `~/.keras/datasets`); for Fashion-MNIST the IDX files of Debian's
`dataset-fashion-mnist` package. When none has the dataset and `download` is
true, its spec's `DownloadSource` is fetched by `keras_er.data.download.fetch`
(same URLs, hashes and cache layout as `keras.datasets`, with a progress bar,
a hash and length check and a timeout on every network read) and read back by
the Keras-cache reader.

Environment:
    KERAS_ER_DATA: folder of `<name>.npz` files.
    KERAS_HOME: the Keras cache root, read at each call (Keras itself reads it
        once, at import).
    KERAS_ER_DOWNLOAD_BASE: a mirror (URL such as `https://host/path` or
        `file:///folder`, or a plain local folder) that holds the files under
        their original names; downloads come from there instead.
    KERAS_ER_DOWNLOAD_TIMEOUT: seconds each connect or read of a download may
        wait (default 60).

This is the one module that may import tensorflow_datasets (optional).
"""

import os
from pathlib import Path

import numpy as np

from keras_er.data.download import download_url
from keras_er.data.download import fetch
from keras_er.data.errors import DatasetDownloadError  # noqa: F401 (re-exported)
from keras_er.data.errors import DatasetNotFoundError  # noqa: F401 (re-exported)
from keras_er.data.readers import CACHE_READERS
from keras_er.data.readers import keras_home
from keras_er.data.readers import read_idx_folder
from keras_er.data.readers import read_npz
from keras_er.data.specs import DATASETS  # noqa: F401 (a live view, re-exported)
from keras_er.data.specs import get_spec

SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


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


def _download_and_read(spec, split, looked):
    fetch(spec, lambda: _not_found_message(spec, split, looked, download=True))
    found = _from_keras_cache(spec.name, split, None, looked)
    if found is None:
        raise DatasetNotFoundError(
            f"Downloaded {spec.name!r} into {keras_home()}, but its {split} split is not where "
            f"the {spec.download.format!r} reader looks; looked in:\n  - " + "\n  - ".join(looked)
        )
    return found


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
    return read_npz(Path(folder) / f"{name}.npz", split, looked)


def _from_keras_cache(name, split, data_dir, looked):
    """What `keras.datasets.<name>.load_data()`, or a download here, leaves in `keras_home()`."""
    source = get_spec(name).download
    if source is None:
        return None
    return CACHE_READERS[source.format](source, split, looked)


def _from_idx(name, split, data_dir, looked):
    if name != "fashion_mnist":
        return None
    looked.append(str(DEBIAN_FASHION_MNIST))
    return read_idx_folder(DEBIAN_FASHION_MNIST, split)
