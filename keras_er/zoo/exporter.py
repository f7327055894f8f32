"""Publishing a model as a zoo entry: weights file, reference logits, card, index."""

import os
import re

import keras
import numpy as np

from keras_er import __version__
from keras_er.files import folder_lock
from keras_er.files import write_text_atomic
from keras_er.masks.model import leaf_layers
from keras_er.masks.model import masked_layers
from keras_er.masks.model import summary
from keras_er.masks.schemes import validate_density
from keras_er.zoo import registry
from keras_er.zoo.builder import identity
from keras_er.zoo.builder import without_preprocessing
from keras_er.zoo.cards import render_card
from keras_er.zoo.weights_io import save_weights

REFERENCE_SEED = 20230101
LICENSE = "Apache-2.0"
PAPER = "Gadhikar, Mukherjee & Burkholz, Why Random Pruning Is All We Need to Start Sparse, ICML 2023, arXiv:2210.02412"


def reference_batch(input_shape, size=8):
    """The fixed seeded input batch (normalised units) whose logits every entry records."""
    rng = np.random.default_rng(REFERENCE_SEED)
    return rng.normal(size=(size,) + tuple(input_shape)).astype("float32")


def reference_pixels(entry, size=8):
    """The reference batch in raw pixels, for a model built with its preprocessing.

    `with_preprocessing` maps these back to `reference_batch`, so the
    entry's `reference_logits` hold for both forms of the model.
    """
    from keras_er.zoo.builder import input_normalization

    mean, std = (np.asarray(v, "float32") for v in input_normalization(entry))
    return reference_batch(entry["input_shape"], size) * std + mean


def refuse_existing(entry_id, root=None):
    """Raise a ValueError naming the entry `entry_id` if the zoo at `root` already holds it."""
    existing = next((e for e in registry.load_index(root) if e["id"] == entry_id), None)
    if existing is None and not (registry.zoo_root(root) / entry_id).exists():
        return
    measured = ", ".join(f"{b} {v:.4f}" for b, v in sorted((existing or {}).get("top1", {}).items())) or "none"
    raise ValueError(
        f"The zoo at {registry.zoo_root(root)} already holds {entry_id} (top-1: {measured}; file "
        f"{(existing or {}).get('file', entry_id + '/')}); it is left as it is. Pass replace=True "
        "(keras-er export --replace) to replace it, or export to another root."
    )


def export(
    model,
    arch,
    scheme,
    density=None,
    *,
    dataset="cifar10",
    seed=0,
    popup=False,
    popup_density=None,
    top1=None,
    top1_first1000=None,
    recipe=None,
    train_seconds=None,
    notes="",
    dst=None,
    prune=None,
    variant=None,
    root=None,
    replace=False,
):
    """Write `model` as a zoo entry: weights file, sha256, card.md, index line.

    Returns the index entry (a dict). An entry with the same id is refused
    (a ValueError naming it, nothing written) unless `replace=True`. A seed
    other than 0 is part of the id (`..._cifar10_s1`).
    The whole export holds the zoo folder's lock and every file is written
    atomically, so a killed or concurrent export leaves a loadable zoo.
    `dst`/`prune` record how the masks were moved or pruned (the run's
    settings); they become part of the id, and the masks come from the file.
    `variant` tags an entry trained with another recipe than the zoo's (the
    id's last part, `keras_er.app.publish.recipe_variant`); such an entry is
    loaded by its id only (`zoo.load`), never by the constructors.
    """
    recipe = dict(recipe or {})
    if variant is not None and not (
        isinstance(variant, str) and re.fullmatch(r"[A-Za-z0-9.+-]+(_[A-Za-z0-9.+-]+)*", variant)
    ):
        raise ValueError(
            f"`variant` must be an id tag such as 'e1_limit1000' (letters, digits, . + -, _); got {variant!r}."
        )
    if "input_normalization" not in recipe and model is not without_preprocessing(model):
        recipe["input_normalization"] = _normalization_of(model)  # what the wrapper applied, kept
    model = without_preprocessing(model)  # the entry records the bare network's logits
    density = 1.0 if scheme == "dense" else validate_density(density)
    entry_id = registry.entry_id(arch, scheme, density, popup, popup_density, dataset, dst, prune, seed, variant)
    folder = registry.zoo_root(root) / entry_id
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    logits = keras.ops.convert_to_numpy(model(reference_batch(input_shape), training=False))
    entry = {
        "id": entry_id,
        "arch": arch,
        "scheme": scheme,
        "density": density,
        "popup": popup,
        "popup_density": popup_density,
        "dataset": dataset,
        "input_shape": list(input_shape),
        "classes": int(model.outputs[0].shape[-1]),
        "seed": seed,
        "dst": dst,
        "prune": prune,
        **({"variant": variant} if variant else {}),
        "top1": top1 or {},
        "top1_first1000": top1_first1000 or {},
        "recipe": recipe or {},
        "train_seconds": train_seconds,
        **_weight_counts(model),
        "layers": _layer_rows(model),
        "exported_on": keras.backend.backend(),
        "versions": {"keras": keras.__version__, "keras_er": __version__},
        "license": LICENSE,
        "paper": PAPER,
        "reference_logits": [[float(v) for v in row] for row in logits],
        "notes": notes,
    }
    with folder_lock(registry.zoo_root(root), purpose="being written"):
        if not replace:
            refuse_existing(entry_id, root)
        # A new file name per content: the entry's old file stays valid until the
        # index (the commit point) names the new one, so a kill at any moment
        # leaves every indexed entry loadable.
        staged = folder / "weights.staged.npz"
        entry["sha256"] = save_weights(model, staged, metadata={"id": entry_id, **identity(entry)})
        name = f"weights-{entry['sha256'][:12]}.npz"
        os.replace(staged, folder / name)
        entry["file"] = f"{entry_id}/{name}"
        write_text_atomic(folder / "card.md", render_card(entry))
        registry.write_entry(entry, root)
        # Older files of this entry, and temporaries a killed export left behind.
        for stale in [*folder.glob("weights*.npz"), *folder.glob(".*.tmp")]:
            if stale.name != name:
                stale.unlink(missing_ok=True)
    return entry


def _weight_counts(model):
    """Conv/dense weights the forward pass uses, and how many there are."""
    if masked_layers(model):
        report = summary(model, print_fn=None)
        return {"weights_kept": report["nonzeros"], "weights_total": report["size"]}
    sizes = [
        int(np.prod(layer.kernel.shape))
        for layer in leaf_layers(model)
        if isinstance(getattr(layer, "kernel", None), keras.Variable)
    ]
    return {"weights_kept": sum(sizes), "weights_total": sum(sizes)}


def _layer_rows(model):
    """The per-layer table of the card: name, shape, size, kept weights, density."""
    if not masked_layers(model):
        return []
    return [{**row, "shape": list(row["shape"])} for row in summary(model, print_fn=None)["layers"]]


def _normalization_of(wrapped):
    """The mean/std (pixel units) of a `with_preprocessing` model's Normalization layer."""
    config = wrapped.get_layer("normalize_pixels").get_config()
    std = [float(v) ** 0.5 for v in np.ravel(config["variance"])]
    return {"mean": [float(v) for v in np.ravel(config["mean"])], "std": std, "units": "pixels 0-255"}
