"""What keras_er knows about each dataset, in one registry.

A `DatasetSpec` names a dataset's image shape, class count, per-channel
normalisation (pixel units, 0-255), whether the CIFAR augmentation applies and,
optionally, how Keras downloads and caches it (`DownloadSource`). Loading,
validation, downloading, the CLI's choices and model building all read
`DATASET_SPECS`; `register_dataset` adds one (its arrays then come from
`$KERAS_ER_DATA/<name>.npz`, or from its download source if it gives one).

`DATASETS` (the names) and `NORMALIZATION` (name -> (mean, std)) are live
read-only views of the registry, so they include datasets registered later.

This module imports neither keras nor numpy: it is plain facts.

Example:

>>> DATASET_SPECS["cifar10"].classes
10
>>> register_dataset(DatasetSpec("tiny", (8, 8, 1), 2, (127.5,), (127.5,)))
DatasetSpec(name='tiny', shape=(8, 8, 1), classes=2, mean=(127.5,), std=(127.5,), augment=False, download=None)
>>> "tiny" in DATASETS, NORMALIZATION["tiny"]
(True, ((127.5,), (127.5,)))
>>> del DATASET_SPECS["tiny"]
"""

import dataclasses
import re
from collections.abc import Mapping, Sequence

# How the files of a `DownloadSource` lie in the Keras cache once fetched, and
# so which reader of `keras_er.data.sources` reads them.
DOWNLOAD_FORMATS = {
    "npz": "one .npz with x_train, y_train, x_test, y_test (like mnist.npz)",
    "idx": "gzipped IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in one folder",
    "cifar10": "a tar archive of cifar-10-batches-py/{data_batch_1..5,test_batch} pickles",
    "cifar100": "a tar archive of cifar-100-python/{train,test} pickles (fine labels)",
}
_HEX_HASH = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file that `keras.utils.get_file` fetches into the Keras cache.

    Args:
        origin: the file's URL. Under `$KERAS_ER_DOWNLOAD_BASE` (a mirror)
            the same file name is fetched from there instead.
        file_hash: sha256 (64 hex digits) or md5 (32) that `get_file` checks
            the download against; None: not checked (Keras publishes no hash
            for Fashion-MNIST).
        fname: its name in the cache; with `extract`, the folder it is
            unpacked into (then without a dot: `get_file` names the folder
            differently when there is one).
        cache_subdir: the cache folder, relative to `$KERAS_HOME` (default
            `~/.keras`), that `get_file` puts it in.
        extract: unpack the (tar or zip) archive after the download.
    """

    origin: str
    file_hash: str | None
    fname: str
    cache_subdir: str = "datasets"
    extract: bool = False

    def __post_init__(self):
        if not isinstance(self.origin, str) or "://" not in self.origin:
            raise ValueError(f"RemoteFile `origin` must be a URL; got {self.origin!r}.")
        if self.file_hash is not None and not (isinstance(self.file_hash, str) and _HEX_HASH.fullmatch(self.file_hash)):
            raise ValueError(
                f"RemoteFile `file_hash` must be None or a sha256 (64 hex digits) "
                f"or md5 (32) hash; got {self.file_hash!r}."
            )
        if not self.fname or "/" in self.fname or (self.extract and "." in self.fname):
            raise ValueError(
                f"RemoteFile `fname` must be a file name, without a dot when `extract` is true; got {self.fname!r}."
            )
        if self.cache_subdir.startswith("/") or ".." in self.cache_subdir.split("/"):
            raise ValueError(
                f"RemoteFile `cache_subdir` must be a folder inside the Keras cache; got {self.cache_subdir!r}."
            )


@dataclasses.dataclass(frozen=True)
class DownloadSource:
    """Where a dataset is downloaded from and how it lies in the Keras cache.

    Args:
        files: the `RemoteFile`s to fetch (one archive, or several files).
        format: a key of `DOWNLOAD_FORMATS`: which reader reads the cached
            files. The reader looks where the first file lands.
    """

    files: tuple
    format: str

    def __post_init__(self):
        if isinstance(self.files, list):  # keep the spec hashable
            object.__setattr__(self, "files", tuple(self.files))
        if not self.files or not all(isinstance(f, RemoteFile) for f in self.files):
            raise TypeError(f"DownloadSource `files` must be a non-empty tuple of RemoteFile; got {self.files!r}.")
        if self.format not in DOWNLOAD_FORMATS:
            raise ValueError(
                f"DownloadSource `format` must be one of {', '.join(DOWNLOAD_FORMATS)}; got {self.format!r}."
            )


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple  # (height, width, channels)
    classes: int
    mean: tuple  # per channel, training split, pixel units
    std: tuple
    augment: bool = False  # pad-4 crop + flip on the training split
    download: DownloadSource | None = None  # None: offline copies only


DATASET_SPECS = {}


class _DatasetNames(Sequence):
    """The registered names, in registration order, read at each use (a live tuple)."""

    def __getitem__(self, index):
        return tuple(DATASET_SPECS)[index]

    def __len__(self):
        return len(DATASET_SPECS)

    def __contains__(self, name):
        return name in DATASET_SPECS

    def __eq__(self, other):
        return isinstance(other, (tuple, _DatasetNames)) and tuple(self) == tuple(other)

    def __repr__(self):
        return repr(tuple(self))


class _Normalization(Mapping):
    """name -> (mean, std) of every registered dataset, read at each use (a live dict)."""

    def __getitem__(self, name):
        spec = DATASET_SPECS[name]
        return spec.mean, spec.std

    def __iter__(self):
        return iter(tuple(DATASET_SPECS))

    def __len__(self):
        return len(DATASET_SPECS)

    def __repr__(self):
        return repr(dict(self))


DATASETS = _DatasetNames()
NORMALIZATION = _Normalization()


def register_dataset(spec):
    """Add `spec` to `DATASET_SPECS` (replacing one of the same name); return it."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"`spec` must be a DatasetSpec; got {type(spec).__name__}.")
    if len(spec.shape) != 3 or len(spec.mean) != spec.shape[-1] or len(spec.std) != spec.shape[-1]:
        raise ValueError(
            f"DatasetSpec {spec.name!r}: `shape` must be (height, width, channels) with one "
            f"mean and std per channel; got shape={spec.shape}, mean={spec.mean}, std={spec.std}."
        )
    if spec.download is not None and not isinstance(spec.download, DownloadSource):
        raise TypeError(
            f"DatasetSpec {spec.name!r}: `download` must be a DownloadSource or "
            f"None; got {type(spec.download).__name__}."
        )
    DATASET_SPECS[spec.name] = spec
    return spec


def get_spec(name):
    """The spec of `name`, or a ValueError listing the known datasets."""
    if name not in DATASET_SPECS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASET_SPECS)}.")
    return DATASET_SPECS[name]


# Download facts as `keras.datasets.<name>.load_data()` (Keras 3.15) has them:
# same URLs, hashes and cache names, so either one reuses the other's download.
_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR10 = DownloadSource(
    (
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            "cifar-10-batches-py-target",
            extract=True,
        ),
    ),
    "cifar10",
)
_CIFAR100 = DownloadSource(
    (
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
            "cifar-100-python-target",
            extract=True,
        ),
    ),
    "cifar100",
)
_MNIST = DownloadSource(
    (
        RemoteFile(
            _KERAS_DATASETS + "mnist.npz",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
            "mnist.npz",
        ),
    ),
    "npz",
)
_FASHION_MNIST = DownloadSource(
    tuple(
        RemoteFile(_KERAS_DATASETS + fname, None, fname, cache_subdir="datasets/fashion-mnist")
        for fname in (
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        )
    ),
    "idx",
)

for _spec in (
    DatasetSpec("cifar10", (32, 32, 3), 10, (125.31, 122.95, 113.87), (62.99, 62.09, 66.70), True, _CIFAR10),
    DatasetSpec("cifar100", (32, 32, 3), 100, (129.30, 124.07, 112.43), (68.17, 65.39, 70.42), True, _CIFAR100),
    DatasetSpec("fashion_mnist", (28, 28, 1), 10, (72.94,), (90.02,), download=_FASHION_MNIST),
    DatasetSpec("mnist", (28, 28, 1), 10, (33.32,), (78.57,), download=_MNIST),
):
    register_dataset(_spec)
