"""Fetching files: a timeout on every network read, honest errors, nothing partial left.

`fetch_file(url, target, file_hash)` streams `url` (http(s) or file) into a
scratch file beside `target` and renames it over `target` only when the body
is whole (as many bytes as its Content-Length) and its hash matches; it raises
`DownloadError` saying what happened: unreachable (`offline=True`: no server
answered), an HTTP error, a truncated body ("expected N bytes, got M"), a stall
mid-body, or other bytes than the hash. Dataset downloads (`fetch`) and zoo
weights (`keras_er.zoo.weight_files.weight_path`) both use it.

Timeout: every socket operation (connect, each read) waits at most
`download_timeout()` seconds: the `timeout` argument, else
`$KERAS_ER_DOWNLOAD_TIMEOUT`, else `DEFAULT_TIMEOUT` (60 s). It bounds each
wait for data, not the whole download, so a slow but moving download completes.

Scratch files are named after their writer, `<name>.part-<host>-<pid>-<token>`
(`keras_er.files.scratch_path`), and removed in `finally`; a process killed
with SIGKILL leaves one, which the next download of that file on this host
removes once that process no longer runs (`remove_stale_scratch`). Dataset
downloads stage in a scratch folder `$KERAS_HOME/.keras_er-download.part-...`,
cleaned the same way.

`KERAS_ER_DOWNLOAD_BASE` (a URL such as `https://host/path` or `file:///folder`,
or a local folder holding the files under their original names) replaces the
origin's location, for mirrors and tests.
"""

import errno
import hashlib
import http.client
import math
import os
import shutil
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from keras_er.data.errors import DatasetDownloadError
from keras_er.data.errors import DownloadError
from keras_er.data.readers import keras_home
from keras_er.files import remove_stale_scratch
from keras_er.files import scratch_path

DEFAULT_TIMEOUT = 60.0
TIMEOUT_VARIABLE = "KERAS_ER_DOWNLOAD_TIMEOUT"
_BLOCK = 1 << 20
# Reasons a connection could not be made at all: no server answered.
_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.EADDRNOTAVAIL,
    errno.ETIMEDOUT,
}


def download_url(origin):
    """`origin`, or the same file name under `$KERAS_ER_DOWNLOAD_BASE` when that is set."""
    base = os.environ.get("KERAS_ER_DOWNLOAD_BASE", "").strip()
    if not base:
        return origin
    if "://" not in base:  # a local folder
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/") + "/" + urllib.parse.urlsplit(origin).path.rsplit("/", 1)[-1]


def download_timeout(timeout=None):
    """Seconds each network wait may take: `timeout`, else `$KERAS_ER_DOWNLOAD_TIMEOUT`, else 60.

    Raises:
        TypeError / ValueError: `timeout` (or the variable) is not a finite positive number.
    """
    if timeout is None:
        raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"${TIMEOUT_VARIABLE} must be a finite positive number of seconds; got {raw!r}.")
        return value
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"`timeout` must be a number of seconds; got {timeout!r}.")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"`timeout` must be a finite positive number of seconds; got {timeout!r}.")
    return float(timeout)


def _is_unreachable(reason):
    """Whether `reason` (what `urlopen` wrapped while connecting) means no server answered."""
    if isinstance(reason, ssl.SSLError):  # a server answered, with a certificate refused
        return False
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError)):
        return True
    return isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS


def _hasher(file_hash):
    return hashlib.md5() if file_hash is not None and len(file_hash) == 32 else hashlib.sha256()


def fetch_file(url, target, file_hash=None, timeout=None, progress=False):
    """Download `url` to `target`, whole and hash-checked, or raise `DownloadError` leaving `target` as it was.

    Args:
        url: an http(s) or file URL.
        target: the final path; written only by one rename once complete.
        file_hash: sha256 (64 hex digits) or md5 (32) the bytes must have; None: unchecked.
        timeout: seconds each connect or read may wait (see `download_timeout`).
        progress: show a `keras.utils.Progbar` while downloading.

    Returns:
        `target` as a `Path`.
    """
    timeout = download_timeout(timeout)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(target)
    scratch = scratch_path(target)
    got = 0
    expected = None
    try:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise DownloadError(f"{url} answered HTTP {error.code} {error.reason}.", url=url, offline=False) from error
        except urllib.error.URLError as error:
            unreachable = _is_unreachable(error.reason)
            what = "could not connect" if unreachable else "failed"
            raise DownloadError(
                f"{url}: {what} ({type(error.reason).__name__}: {error.reason}).", url=url, offline=unreachable
            ) from error
        except (OSError, http.client.HTTPException) as error:  # connected, but no whole answer (headers)
            stalled = isinstance(error, TimeoutError)
            raise DownloadError(
                f"{url}: the server accepted the connection but "
                + (f"sent no answer within {timeout:g} s." if stalled else f"sent no valid answer ({error!r})."),
                url=url,
                offline=False,
            ) from error
        with response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None and length.strip().isdigit() else None
            digest = _hasher(file_hash)
            bar = None
            if progress:
                import keras

                bar = keras.utils.Progbar(expected)
            read = getattr(response, "read1", response.read)  # read1: what arrived, so `got` counts it
            with open(scratch, "wb") as handle:
                while True:
                    try:
                        block = read(_BLOCK)
                    except TimeoutError as error:
                        raise DownloadError(
                            f"{url}: no data for {timeout:g} s after {got} of "
                            f"{expected if expected is not None else 'unknown'} bytes (timeout ${TIMEOUT_VARIABLE}).",
                            url=url,
                            offline=False,
                        ) from error
                    except (OSError, http.client.HTTPException) as error:  # IncompleteRead, reset mid-body
                        raise DownloadError(
                            f"{url}: truncated: expected {expected if expected is not None else 'more'} bytes, "
                            f"got {got} ({type(error).__name__}: {error}).",
                            url=url,
                            offline=False,
                        ) from error
                    if not block:
                        break
                    handle.write(block)
                    digest.update(block)
                    got += len(block)
                    if bar is not None:
                        bar.update(got)
                handle.flush()
                os.fsync(handle.fileno())
        if expected is not None and got != expected:
            raise DownloadError(
                f"{url}: truncated: expected {expected} bytes (Content-Length), got {got}.", url=url, offline=False
            )
        if file_hash is not None and digest.hexdigest() != file_hash.lower():
            name = "md5" if len(file_hash) == 32 else "sha256"
            raise DownloadError(
                f"{url}: the {name} hash does not match: expected {file_hash.lower()}, got {digest.hexdigest()} "
                f"({got} bytes).",
                url=url,
                offline=False,
            )
        os.replace(scratch, target)
        return target
    finally:
        scratch.unlink(missing_ok=True)


def fetch(spec, describe_sources, timeout=None):
    """Fetch every file of `spec.download` into the Keras cache, all or nothing.

    The files are fetched (`fetch_file`) into a scratch folder inside
    `keras_home()` in the layout `keras.utils.get_file` makes (an archive as
    `<fname>_archive`, unpacked into `<fname>`; Keras unpacks it, from the
    local copy); only when every file is fetched and verified are they renamed
    (same file system, so atomically) into place. A failure or an interrupt
    leaves nothing behind; a killed process's scratch folder is removed by the
    next download.
    """
    home = keras_home()
    home.mkdir(parents=True, exist_ok=True)
    stage = home / ".keras_er-download"
    remove_stale_scratch(stage)
    scratch = scratch_path(stage)
    scratch.mkdir()
    try:
        for remote in spec.download.files:
            url = download_url(remote.origin)
            folder = scratch / remote.cache_subdir
            target = folder / (f"{remote.fname}_archive" if remote.extract else remote.fname)
            try:
                fetch_file(url, target, remote.file_hash, timeout=timeout, progress=True)
                if remote.extract:
                    import keras

                    # The archive is already there (get_file finds it by this name): Keras only unpacks it.
                    keras.utils.get_file(
                        fname=remote.fname,
                        origin=target.as_uri(),
                        cache_subdir=remote.cache_subdir,
                        extract=True,
                        cache_dir=str(scratch),
                    )
            except DownloadError as error:
                cause = "unreachable" if error.offline else "failed"
                raise DatasetDownloadError(
                    f"Could not download dataset {spec.name!r} from {url} ({cause}): {error}\n"
                    f"Nothing was left in {home}. "
                    "Retry online, set $KERAS_ER_DOWNLOAD_BASE to a mirror, or provide it offline.\n"
                    + describe_sources()
                ) from error
            except Exception as error:  # unpacking: a damaged archive
                raise DatasetDownloadError(
                    f"Could not unpack dataset {spec.name!r} downloaded from {url}: "
                    f"{type(error).__name__}: {error}\nNothing was left in {home}.\n" + describe_sources()
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
