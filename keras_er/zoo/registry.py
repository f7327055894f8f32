"""The zoo index: which entries exist and what each one is (where its weights come from: `weight_files`).

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
from pathlib import Path

from keras_er.files import folder_lock
from keras_er.files import json_text
from keras_er.files import write_text_atomic

INDEX_VERSION = 1
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
        text = json_text({"format_version": INDEX_VERSION, "entries": entries})
        write_text_atomic(folder / "index.json", text + "\n")


def write_entry_files(entry, folder):
    """Write the entry's `config.json` and `metadata.json` into its folder."""
    config = {key: entry.get(key) for key in CONFIG_FIELDS if key != "variant" or entry.get(key)}
    metadata = {key: value for key, value in entry.items() if key not in CONFIG_FIELDS}
    write_text_atomic(folder / "config.json", json_text(config) + "\n")
    write_text_atomic(folder / "metadata.json", json_text(metadata) + "\n")


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
        text = json_text({"format_version": INDEX_VERSION, "entries": entries})
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
    `keras_er.app.publish.recipe_variant`).
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


def entry_seed(entry):
    """The seed an entry was trained with: 0 where it records none."""
    return entry.get("seed") or 0


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
        and (seed is None or entry_seed(e) == seed)
        and (e.get("variant") or None) == (variant or None)
    ]
    if matches:
        return sorted(matches, key=lambda e: (e["dataset"] != "cifar10", entry_seed(e)))[0]
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
