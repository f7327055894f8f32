"""The compact zoo weight file: nonzero values + packed-bit masks, sha256-checked.

A weight file is a compressed `.npz` (read with `allow_pickle=False`)
holding one array per model variable and a JSON manifest. Masks are stored as
packed bits, masked kernels and popup scores as their values at the mask's
positions only, and a popup kernel that is exactly what its seed produces as
that seed. Other variables (biases, BatchNorm) are stored as they are. A
density-0.1 ResNet20 file is about 0.13x its dense `.weights.h5`.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
from keras import ops

from keras_er.files import atomic_write
from keras_er.files import sha256_of
from keras_er.layers import popup as popup_lib
from keras_er.layers.masked_layer import MaskedLayer
from keras_er.masks.model import leaf_layers

FORMAT = "keras_er.sparse-weights"
FORMAT_VERSION = 1
MANIFEST_KEY = "__manifest__"


def save_weights(model, path, metadata=None):
    """Write `model`'s weights to `path` in the compact format; return its sha256."""
    arrays, records = {}, []
    for layer, variable in _layer_variables(model):
        index = len(records)
        value = ops.convert_to_numpy(variable)
        record = {
            "layer": layer.name,
            "name": variable.name,
            "shape": list(value.shape),
            "dtype": str(value.dtype),
        }
        if value.dtype.kind == "V":  # npz keeps ml_dtypes (bfloat16, ...) as raw bytes
            value = value.astype(np.float32)  # exact for every narrower float
        record.update(_encode(layer, variable, value, arrays, index))
        records.append(record)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "variables": records,
        "metadata": metadata or {},
    }
    arrays[MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with atomic_write(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        digest = sha256_of(temporary)
    return digest


def load_weights(model, path, sha256=None, expect=None):
    """Load a compact weight file into `model`, checking `sha256` first.

    Everything is read, checked and decoded before any variable changes, so a
    corrupt, truncated or mismatched file leaves the model as it was.
    `expect` (e.g. `{"id": ...}`) must agree with the file's own metadata
    wherever the file records that key: a file swapped for another entry's is
    refused even when its checksum was updated with it.

    Raises:
        ValueError: the checksum differs, the file is not a keras_er weight
            file or is damaged, it was written by a newer format version, or
            its variables do not match the model's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weight file not found: {path}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise ValueError(
                f"sha256 mismatch for {path}: expected {sha256}, got {actual}. "
                "The file is corrupt, truncated or not the published one; it "
                "was not loaded."
            )
    manifest, arrays = _read(path)
    _check_metadata(manifest.get("metadata", {}), expect or {}, path)
    pairs = _layer_variables(model)
    _check_matches(manifest["variables"], pairs, path)
    decoded = _decode_all(manifest["variables"], arrays, path)
    for (_, variable), value in zip(pairs, decoded):
        variable.assign(value)
    return manifest.get("metadata", {})


def _layer_variables(model):
    return [(layer, v) for layer in leaf_layers(model) for v in layer.weights]


def _encode(layer, variable, value, arrays, index):
    key = str(index)
    if isinstance(layer, MaskedLayer):
        mask = ops.convert_to_numpy(layer.mask).astype(bool)
        if variable is layer.mask:
            arrays[key] = np.packbits(mask.ravel())
            return {"encoding": "bits"}
        if variable is layer.kernel and layer.popup:
            frozen = popup_lib.frozen_kernel(value.shape, layer.fan_in, layer.resolved_seed, value.dtype)
            if np.array_equal(frozen, value):
                return {
                    "encoding": "frozen_seed",
                    "seed": layer.resolved_seed,
                    "fan_in": layer.fan_in,
                }
        elif variable is layer.kernel or variable is getattr(layer, "scores", None):
            if not np.any(value[~mask]):
                arrays[key] = value[mask]
                return {"encoding": "masked", "mask": layer.mask.name}
    arrays[key] = value
    return {"encoding": "dense"}


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as error:
        raise ValueError(f"{path} is not a readable keras_er weight file ({error}).") from None
    try:
        manifest = json.loads(arrays.pop(MANIFEST_KEY).tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ValueError(f"{path} has no valid keras_er manifest.") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a keras_er weight file (format {manifest.get('format')!r}).")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses weight format version {version!r}; this keras_er reads "
            f"versions up to {FORMAT_VERSION}. Upgrade keras_er to load it."
        )
    return manifest, arrays


def _check_metadata(metadata, expect, path):
    differing = {
        key: (metadata[key], value) for key, value in expect.items() if key in metadata and metadata[key] != value
    }
    if differing:
        details = "; ".join(f"{key}: file has {have!r}, expected {want!r}" for key, (have, want) in differing.items())
        raise ValueError(f"{path} is not the requested weights ({details}); it was not loaded.")


def _check_matches(records, pairs, path):
    if len(records) != len(pairs):
        raise ValueError(
            f"{path} holds {len(records)} variables but the model has "
            f"{len(pairs)}: it was saved from another architecture."
        )
    for record, (layer, variable) in zip(records, pairs):
        # Layer names are recorded for messages only: auto-generated names
        # (dense_3, ...) differ between Python processes for the same architecture.
        if record["name"] != variable.name or tuple(record["shape"]) != tuple(variable.shape):
            raise ValueError(
                f"{path} does not match the model: file has "
                f"{record['layer']}/{record['name']} {tuple(record['shape'])}, model "
                f"has {layer.name}/{variable.name} {tuple(variable.shape)}."
            )


def _decode_all(records, arrays, path):
    masks = {}
    for index, record in enumerate(records):
        if record["encoding"] == "bits":
            size = int(np.prod(record["shape"]))
            bits = np.unpackbits(arrays[str(index)], count=size).astype(bool)
            masks[(record["layer"], record["name"])] = bits.reshape(record["shape"])
    values = []
    for index, record in enumerate(records):
        try:
            values.append(_decode(record, arrays.get(str(index)), masks))
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(
                f"{path} is damaged: variable {record['layer']}/{record['name']} cannot be decoded ({error})."
            ) from None
    return values


def _decode(record, array, masks):
    shape, dtype, encoding = tuple(record["shape"]), record["dtype"], record["encoding"]
    if encoding == "bits":
        return masks[(record["layer"], record["name"])].astype(dtype)
    if encoding == "frozen_seed":
        return popup_lib.frozen_kernel(shape, record["fan_in"], record["seed"], dtype)
    if encoding == "masked":
        mask = masks[(record["layer"], record["mask"])]
        value = np.zeros(shape, dtype)
        value[mask] = array
        return value
    if encoding == "dense":
        return array.astype(dtype).reshape(shape)
    raise ValueError(f"unknown encoding {encoding!r}")
