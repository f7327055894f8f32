"""Fetching a dataset with `keras.utils.get_file`, all files or none.

`KERAS_ER_DOWNLOAD_BASE` (a URL such as `https://host/path` or `file:///folder`,
or a local folder holding the files under their original names) replaces the
origin's location, for mirrors and tests.
"""

import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

from keras_er.data.errors import DatasetDownloadError
from keras_er.data.readers import keras_home


def download_url(origin):
    """`origin`, or the same file name under `$KERAS_ER_DOWNLOAD_BASE` when that is set."""
    base = os.environ.get("KERAS_ER_DOWNLOAD_BASE", "").strip()
    if not base:
        return origin
    if "://" not in base:  # a local folder
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/") + "/" + urllib.parse.urlsplit(origin).path.rsplit("/", 1)[-1]


def fetch(spec, describe_sources):
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
                import keras

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
                    + describe_sources()
                ) from error
        move_into(scratch, home)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def move_into(scratch, home):
    """Move every file under `scratch` to the same relative place under `home`."""
    for path in sorted(scratch.rglob("*")):
        if path.is_file() and not path.is_symlink():
            target = home / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
