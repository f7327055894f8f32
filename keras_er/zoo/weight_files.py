"""Where a zoo entry's weight file comes from: the package, the Keras cache, or a download on first use."""

import os
import re

from keras_er.files import sha256_of
from keras_er.zoo.registry import zoo_root

# Where weights too large for the wheel are published (`keras-er export --external`):
# the release assets of the zoo; `$KERAS_ER_DOWNLOAD_BASE` points downloads at a mirror.
ASSET_BASE = "https://github.com/keras-er/keras_er/releases/download/zoo-v1"


class ZooWeightsUnavailable(FileNotFoundError):
    """An entry's weights are neither in the zoo folder nor in the cache, and could not be downloaded.

    `offline` is True only when no server could be reached (name resolution,
    connection refused, no route: `keras_er.data.errors.DownloadError.offline`);
    False when a server answered with an HTTP error, a truncated body, a stall
    mid-body, or other bytes than the entry's sha256: a failure, never a skip;
    False too for an entry that is not distributed (`weights_status`).
    """

    def __init__(self, message, offline):
        super().__init__(message)
        self.offline = offline


def asset_name(entry):
    """File name of an entry's weights outside the wheel: `<id>-<sha256[:12]>.npz`."""
    return f"{entry['id']}-{entry['sha256'][:12]}.npz"


def cached_path(entry):
    """Where a downloaded (or hand-placed) copy of an external entry's weights lives."""
    from keras_er.data.readers import keras_home

    return keras_home() / "keras_er" / asset_name(entry)


def _file_without_download(entry, root=None):
    """The zoo folder's file (any entry without an `origin`), else a sha256-matching cached copy, else None."""
    local = zoo_root(root) / entry["file"]
    if local.exists() or not entry.get("origin"):
        return local
    cached = cached_path(entry)
    return cached if cached.is_file() and sha256_of(cached) == entry["sha256"] else None


def available_offline(entry, root=None):
    """Whether the entry's weights load without a download (shipped, or a matching copy in the cache)."""
    return _file_without_download(entry, root) is not None


SHIPPED = "in the package"
CACHED = "in the Keras cache"
DOWNLOADED = "downloaded on first use"
NOT_DISTRIBUTED = "not distributed: reproduce with the card's command"


def released(entry):
    """Whether an entry kept out of the wheel is uploaded to its `origin` (`"released"`, absent: True)."""
    return bool(entry.get("released", True))


def weights_status(entry, root=None):
    """Where the entry's weights come from, in words.

    `SHIPPED` (the zoo folder holds them, so the wheel does), `CACHED` (a
    sha256-matching copy of a file kept out of the wheel), `DOWNLOADED` (from
    its `origin`, on first use) or `NOT_DISTRIBUTED` (kept out of the wheel and
    not uploaded yet, `"released": false`: the card's command reproduces it).
    """
    found = _file_without_download(entry, root)
    if found is not None:
        return CACHED if found == cached_path(entry) else SHIPPED
    return DOWNLOADED if released(entry) else NOT_DISTRIBUTED


def reproduce_command(entry):
    """The command in the entry's card that trains it again, or None if its notes have none."""
    match = re.search(r"## Reproduce\s+```(?:bash)?\n(.+?)\n```", entry.get("notes") or "", re.DOTALL)
    return match.group(1).strip() if match else None


def weight_path(entry, root=None, timeout=None):
    """Local path of the entry's weights file.

    The zoo folder's copy when there is one (every entry the wheel ships);
    else, for an entry with an `origin` (a file too large for the wheel), the
    copy in the Keras cache (`cached_path`) when its sha256 matches, else a
    download from `origin` (or from `$KERAS_ER_DOWNLOAD_BASE`, a mirror or
    local folder holding the origin's file name) with
    `keras_er.data.download.fetch_file`: each connect or read waits at most
    `timeout` seconds (default `$KERAS_ER_DOWNLOAD_TIMEOUT`, else 60), and the
    bytes go to a scratch file `<cache name>.part-<host>-<pid>-<token>` renamed
    into the cache only once whole and sha256-matching, so a killed, truncated
    or wrong download never sits under the cache name (a killed process's
    scratch file is removed by the next download). Raises
    `ZooWeightsUnavailable` saying where the file comes from and what failed.
    """
    found = _file_without_download(entry, root)
    if found is not None:
        return found
    cached = cached_path(entry)
    from keras_er.data.download import download_timeout
    from keras_er.data.download import download_url
    from keras_er.data.download import fetch_file
    from keras_er.data.errors import DownloadError

    timeout = download_timeout(timeout)  # a bad timeout is a ValueError/TypeError, not "unavailable"
    if not released(entry) and not os.environ.get("KERAS_ER_DOWNLOAD_BASE"):
        raise ZooWeightsUnavailable(_not_distributed_message(entry, root), offline=False)
    url = download_url(entry["origin"])
    try:
        return fetch_file(url, cached, file_hash=entry["sha256"], timeout=timeout, progress=True)
    except DownloadError as error:
        # The message carries the download's error; its chain of socket and HTTP frames adds nothing.
        raise ZooWeightsUnavailable(
            f"{_outside_the_wheel(entry)}; they come from {entry['origin']}.\n"
            f"Downloading {url} failed ({'unreachable' if error.offline else 'the server answered'}: {error}).\n"
            f"{_by_hand(entry)}",
            offline=_unreachable(error),
        ) from None


def _outside_the_wheel(entry):
    size = f"{entry['file_bytes'] / 1e6:.0f} MB, " if entry.get("file_bytes") else ""
    return (
        f"The weights of zoo entry {entry['id']!r} ({size}sha256 {entry['sha256']}) are not shipped "
        "with keras_er (too large for the wheel)"
    )


def _by_hand(entry):
    return (
        f"With a copy of the file, place it at {cached_path(entry)}, or set $KERAS_ER_DOWNLOAD_BASE to a "
        f"folder or mirror holding {entry['origin'].rsplit('/', 1)[-1]}."
    )


def _not_distributed_message(entry, root):
    card = zoo_root(root) / entry["id"] / "card.md"
    command = reproduce_command(entry)
    how = f"  {command}\nthen" if command else f"the command in {card}, then"
    return (
        f"{_outside_the_wheel(entry)} and not distributed: nothing is uploaded to {entry['origin']} yet.\n"
        f"Reproduce them with the entry's card ({card}):\n{how} `keras-er export RUN --root FOLDER` and load "
        "that entry with `root=FOLDER` (it has its own sha256).\n"
        f"{_by_hand(entry)}"
    )


def _unreachable(error):
    """True when `error` (or what caused it) is a `DownloadError` for which no server answered."""
    from keras_er.data.errors import DownloadError

    while error is not None:
        if isinstance(error, DownloadError):
            return error.offline
        error = error.__cause__ or error.__context__
    return False
