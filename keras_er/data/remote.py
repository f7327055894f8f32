"""Download facts of a dataset: which files, their hashes, and how they lie in the Keras cache.

Plain, validated facts (no keras, no numpy), held by each `DatasetSpec`.
"""

import dataclasses
import re

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
    """One file that a download (`keras_er.data.download.fetch`) puts into the Keras cache.

    Args:
        origin: the file's URL. Under `$KERAS_ER_DOWNLOAD_BASE` (a mirror)
            the same file name is fetched from there instead.
        file_hash: sha256 (64 hex digits) or md5 (32) that the bytes are checked
            the download against; None: not checked (Keras publishes no hash
            for Fashion-MNIST).
        fname: its name in the cache; with `extract`, the folder it is
            unpacked into (then without a dot: `keras.utils.get_file` names the folder
            differently when there is one).
        cache_subdir: the cache folder, relative to `$KERAS_HOME` (default
            `~/.keras`), that it is put in (as `keras.utils.get_file` would).
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
