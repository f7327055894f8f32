"""The zoo index: where the weights live and which entries exist.

Each entry folder describes itself, as keras-hub presets do: `config.json`
(what builds the model: arch, scheme, density, popup settings, dataset,
input shape, classes, mask seed) and `metadata.json` (weight file and
sha256, accuracy per backend, recipe, weight counts, versions, reference
logits, the card's table and notes) beside the weights and `card.md`.
`zoo/index.json`, `{"format_version": 1, "entries": [...]}`, is generated
from them: one merged dict per entry, read by everything that lists the zoo.
"""

import json
import os
import re
from pathlib import Path


from keras_er.files import folder_lock
from keras_er.files import sha256_of
from keras_er.files import write_text_atomic

INDEX_VERSION = 1
# Where weights too large for the wheel are published (`keras-er export --external`):
# the release assets of the zoo; `$KERAS_ER_DOWNLOAD_BASE` points downloads at a mirror.
ASSET_BASE = "https://github.com/keras-er/keras_er/releases/download/zoo-v1"
CONFIG_FIELDS = (
    "id",
    "arch",
    "scheme",
    "density",
    "popup",
    "popup_density",
    "dataset",
    "input_shape",
    "classes",
    "seed",
    "dst",
    "prune",
    "variant",
)
REQUIRED_FIELDS = (
    "id",
    "arch",
    "scheme",
    "density",
    "dataset",
    "input_shape",
    "classes",
    "file",
    "sha256",
)


def zoo_root(root=None):
    """The zoo folder: `root`, else `$KERAS_ER_ZOO_DIR`, else the shipped one.

    A wheel ships the weights as `keras_er/zoo_files`; a source checkout (or
    an editable install) uses the repository's top-level `zoo/`.
    """
    if root is not None:
        return Path(root)
    if os.environ.get("KERAS_ER_ZOO_DIR"):
        return Path(os.environ["KERAS_ER_ZOO_DIR"])
    package = Path(__file__).resolve().parents[1]
    shipped = package / "zoo_files"
    return shipped if shipped.is_dir() else package.parent / "zoo"


def load_index(root=None):
    """The list of entries of `zoo/index.json` (empty if there is no index)."""
    path = zoo_root(root) / "index.json"
    if not path.exists():
        return []
    try:
        index = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"The zoo index {path} is not valid JSON ({error}).") from None
    if not isinstance(index, dict) or not isinstance(index.get("entries"), list):
        raise ValueError(f"The zoo index {path} must be an object with an 'entries' list.")
    if index.get("format_version", 0) > INDEX_VERSION:
        raise ValueError(
            f"The zoo index {path} has format_version {index['format_version']}; this "
            f"keras_er reads up to {INDEX_VERSION}. Upgrade keras_er."
        )
    for entry in index["entries"]:
        missing = [f for f in REQUIRED_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise ValueError(f"The zoo index {path} has an entry without {missing}.")
    return index["entries"]


def write_entry(entry, root=None):
    """Add `entry` to the index, replacing an entry with the same id.

    Read, change and write happen under the zoo folder's lock, and the new
    index replaces the old one in one rename: concurrent writers lose no
    entry and a kill never leaves a partial index.
    """
    folder = zoo_root(root)
    with folder_lock(folder, purpose="being written"):
        write_entry_files(entry, folder / entry["id"])
        entries = [e for e in load_index(root) if e["id"] != entry["id"]]
        entries.append(entry)
        entries.sort(key=lambda e: e["id"])
        text = json.dumps({"format_version": INDEX_VERSION, "entries": entries}, indent=1)
        write_text_atomic(folder / "index.json", text + "\n")


def write_entry_files(entry, folder):
    """Write the entry's `config.json` and `metadata.json` into its folder."""
    config = {key: entry.get(key) for key in CONFIG_FIELDS if key != "variant" or entry.get(key)}
    metadata = {key: value for key, value in entry.items() if key not in CONFIG_FIELDS}
    write_text_atomic(folder / "config.json", json.dumps(config, indent=1) + "\n")
    write_text_atomic(folder / "metadata.json", json.dumps(metadata, indent=1) + "\n")


def read_entry_files(folder):
    """The entry an entry folder describes (its config.json and metadata.json merged)."""
    folder = Path(folder)
    merged = {}
    for name in ("config.json", "metadata.json"):
        try:
            merged.update(json.loads((folder / name).read_text()))
        except (OSError, ValueError) as error:
            raise ValueError(f"The zoo entry folder {folder} has no readable {name} ({error}).") from None
    return merged


def rebuild_index(root=None):
    """Regenerate `index.json` from the entry folders; return the entries."""
    folder = zoo_root(root)
    with folder_lock(folder, purpose="being written"):
        entries = sorted(
            (read_entry_files(path.parent) for path in folder.glob("*/config.json")), key=lambda e: e["id"]
        )
        text = json.dumps({"format_version": INDEX_VERSION, "entries": entries}, indent=1)
        write_text_atomic(folder / "index.json", text + "\n")
    return entries


def update_entry(entry_id, change, root=None):
    """Apply `change(entry)` to the indexed entry `entry_id` under the zoo's lock; return it.

    Re-reads the index inside the lock, so concurrent updates (e.g. recording
    each backend's accuracy at once) all land.
    """
    with folder_lock(zoo_root(root), purpose="being written"):
        matches = [e for e in load_index(root) if e["id"] == entry_id]
        if not matches:
            raise ValueError(f"No zoo entry {entry_id!r} in {zoo_root(root)}.")
        change(matches[0])
        write_entry(matches[0], root)
        return matches[0]


def entry_id(
    arch,
    scheme,
    density=None,
    popup=False,
    popup_density=None,
    dataset="cifar10",
    dst=None,
    prune=None,
    seed=0,
    variant=None,
):
    """`<arch>_<scheme>_d<density>[_popup<p>][_<dst method>][_<prune method>-<scope>]_<dataset>[_s<seed>][_<variant>]`.

    Seed 0 has no suffix: those are the entries the constructors load. `variant`
    names how a run's recipe differs from the zoo's (e.g. "e1_limit1000",
    `keras_er.zoo.publish.recipe_variant`).
    """
    parts = [arch, scheme]
    if scheme != "dense":
        parts.append(f"d{density:g}")
    if popup:
        parts.append(f"popup{popup_density:g}")
    if dst:
        parts.append(dst["method"])
    if prune:
        parts.append(f"{prune['method']}-{prune['scope']}")
    parts.append(dataset)
    if seed:
        parts.append(f"s{seed}")
    if variant:
        parts.append(variant)
    return "_".join(parts)


def find_entry(
    arch, scheme, density, popup, popup_density, dataset=None, root=None, dst=None, prune=None, seed=None, variant=None
):
    """The entry for these settings, or a ValueError naming what does exist.

    Masks moved by DST or set by pruning are other entries than the ER ones:
    `dst`/`prune` (the run's settings, None for ER) must match too. With
    `seed`, only that seed's entry; without, seed 0's first. An entry trained
    with another recipe than the zoo's is found only by its `variant`.
    """
    entries = load_index(root)
    matches = [
        e
        for e in entries
        if e["arch"] == arch
        and e["scheme"] == scheme
        and (scheme == "dense" or abs(e["density"] - density) < 1e-9)
        and bool(e.get("popup", False)) == popup
        and (not popup or abs(e.get("popup_density", 0) - popup_density) < 1e-9)
        and (dataset is None or e["dataset"] == dataset)
        and (e.get("dst") or None) == (dst or None)
        and (e.get("prune") or None) == (prune or None)
        and (seed is None or e.get("seed", 0) == seed)
        and (e.get("variant") or None) == (variant or None)
    ]
    if matches:
        return sorted(matches, key=lambda e: (e["dataset"] != "cifar10", e.get("seed", 0) != 0, e.get("seed", 0)))[0]
    siblings = [e["id"] for e in entries if e["arch"] == arch]
    wanted = entry_id(
        arch, scheme, density, popup, popup_density, dataset or "<any dataset>", dst, prune, seed or 0, variant
    )
    raise ValueError(
        f"No published weights for {wanted}. "
        + (f"Published for {arch}: {', '.join(siblings)}. " if siblings else f"Nothing is published for {arch} yet. ")
        + "Use `pretrained=None` for a randomly initialised model, or see "
        "keras_er.zoo.available_weights()."
    )


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
    from keras_er.data.download import download_timeout, download_url, fetch_file
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
