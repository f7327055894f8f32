"""The keras_er model zoo: `<arch>_<scheme>(density=...)` constructors.

Every architecture in `keras_er.models` comes with one constructor per
density scheme, `resnet20_erk`, `resnet20_balanced`, ..., and a dense
reference, `resnet20_dense`. `pretrained=True` loads the published weights
for those settings (sha256-checked, offline from the zoo folder);
`pretrained=None` gives a randomly initialised ER-sparse model.

Example:

>>> model = keras_er.zoo.resnet20_erk(density=0.1, pretrained=None)
>>> keras_er.masks.summary(model)["global_density"]
0.1...
"""


import os

import numpy as np
import keras

from keras_er.files import folder_lock
from keras_er.files import write_text_atomic
from keras_er.model_masks import leaf_layers
from keras_er.model_masks import masked_layers
from keras_er.model_masks import summary
from keras_er.masks.schemes import SCHEMES
from keras_er.masks.schemes import validate_density
from keras_er.models import ARCHITECTURES
from keras_er.conversion import sparsify
from keras_er.zoo import registry
from keras_er.zoo.weights_io import load_weights
from keras_er.zoo.weights_io import save_weights

DEFAULT_INPUT_SHAPE = (32, 32, 3)
DEFAULT_CLASSES = 10
REFERENCE_SEED = 20230101


def build(
    arch,
    scheme="erk",
    density=0.1,
    *,
    pretrained=True,
    seed=0,
    popup=False,
    popup_density=0.5,
    input_shape=None,
    classes=None,
    root=None,
):
    """Build `arch` with `scheme` masks; the zoo constructors call this.

    Args:
        arch: a name from `keras_er.models.ARCHITECTURES` (e.g. "resnet20").
        scheme: "erk", "uniform", "balanced", "pyramidal" or "dense".
        density: global fraction of conv/dense weights kept (ignored for
            "dense").
        pretrained: True loads the published weights for these settings;
            a dataset name ("cifar10", "fashion_mnist") asks for that
            dataset's entry; None gives a randomly initialised model.
        seed: mask seed for a randomly initialised model (a pretrained model
            gets the masks stored in its file).
        popup, popup_density: strong-ticket mode (see `keras_er.sparsify`).
        input_shape, classes: default to the entry's (pretrained) or
            (32, 32, 3) and 10.
        root: zoo folder (default: `keras_er.zoo.registry.zoo_root()`).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown `arch` {arch!r}; expected one of {', '.join(ARCHITECTURES)}.")
    if scheme != "dense" and scheme not in SCHEMES:
        raise ValueError(
            f"Unknown `scheme` {scheme!r}; expected one of {', '.join(SCHEMES + ('dense',))}."
        )
    if not (pretrained is True or pretrained is None or isinstance(pretrained, str)):
        raise ValueError(
            f"`pretrained` must be True, None or a dataset name; got {pretrained!r}."
        )
    if scheme == "dense" and popup:
        raise ValueError("`popup=True` needs a sparse `scheme`: popup selects weights inside "
                         "an ER mask, and a dense model has none.")
    density = 1.0 if scheme == "dense" else validate_density(density)
    entry = None
    if pretrained is not None:
        dataset = pretrained if isinstance(pretrained, str) else None
        entry = registry.find_entry(arch, scheme, density, popup, popup_density, dataset, root)
        input_shape = _agree(input_shape, tuple(entry["input_shape"]), "input_shape", entry)
        classes = _agree(classes, entry["classes"], "classes", entry)
    model = ARCHITECTURES[arch](
        tuple(input_shape or DEFAULT_INPUT_SHAPE), classes or DEFAULT_CLASSES
    )
    if scheme != "dense":
        model = sparsify(
            model,
            density,
            scheme,
            seed=seed,
            method="exact",
            popup=popup,
            popup_density=popup_density,
        )
    if entry is not None:
        load_weights(
            model, registry.weight_path(entry, root), sha256=entry["sha256"],
            expect={"id": entry["id"], **_identity(entry)},
        )
    return model


def load(entry_id, root=None):
    """The published model `entry_id` (an id from `available_weights()`), weights loaded.

    Example:

    >>> model = keras_er.zoo.load("resnet20_erk_d0.1_cifar10")
    >>> keras_er.masks.summary(model, print_fn=None)["nonzeros"]
    27087
    """
    entries = {entry["id"]: entry for entry in registry.load_index(root)}
    if entry_id not in entries:
        raise ValueError(
            f"No zoo entry {entry_id!r}; published: {', '.join(sorted(entries)) or 'none'}."
        )
    entry = entries[entry_id]
    return build(
        entry["arch"], entry["scheme"], entry["density"], pretrained=entry["dataset"],
        seed=entry.get("seed", 0), popup=bool(entry.get("popup")),
        popup_density=entry.get("popup_density") or 0.5, root=root,
    )


def _identity(entry):
    """What a weight file records about itself, to be checked against its index entry."""
    keys = ("arch", "scheme", "density", "popup", "popup_density", "dataset")
    return {key: entry.get(key) for key in keys}


def _agree(requested, published, name, entry):
    if requested is not None and tuple(np.atleast_1d(requested)) != tuple(np.atleast_1d(published)):
        raise ValueError(
            f"`{name}`={requested!r} differs from the published entry {entry['id']} "
            f"({published!r}); use pretrained=None for another {name}."
        )
    return published


def _constructor(arch, scheme):
    if scheme == "dense":

        def constructor(*, pretrained=True, input_shape=None, classes=None, root=None):
            return build(
                arch, "dense", pretrained=pretrained, input_shape=input_shape,
                classes=classes, root=root,
            )

    else:

        def constructor(
            density=0.1, *, pretrained=True, seed=0, popup=False, popup_density=0.5,
            input_shape=None, classes=None, root=None,
        ):
            return build(
                arch, scheme, density, pretrained=pretrained, seed=seed, popup=popup,
                popup_density=popup_density, input_shape=input_shape,
                classes=classes, root=root,
            )

    constructor.__name__ = constructor.__qualname__ = f"{arch}_{scheme}"
    constructor.__doc__ = (
        f"{arch} with {scheme} masks. Arguments as `keras_er.zoo.build`."
    )
    return constructor


_CONSTRUCTORS = {
    f"{arch}_{scheme}": _constructor(arch, scheme)
    for arch in ARCHITECTURES
    for scheme in SCHEMES + ("dense",)
}
globals().update(_CONSTRUCTORS)


def list_models():
    """Names of every zoo constructor, e.g. `resnet20_erk`."""
    return sorted(_CONSTRUCTORS)


def available_weights(root=None, print_fn=None):
    """Rows (id, arch, scheme, density, dataset, top1, sha256) of published weights."""
    rows = [
        {
            "id": e["id"],
            "arch": e["arch"],
            "scheme": e["scheme"],
            "density": e["density"],
            "popup_density": e.get("popup_density") if e.get("popup") else None,
            "dataset": e["dataset"],
            "top1": e.get("top1", {}),
            "sha256": e["sha256"],
        }
        for e in registry.load_index(root)
    ]
    if print_fn is not None:
        for row in rows:
            print_fn(
                f"{row['id']:<40} {row['density']:<6g} {row['dataset']:<14} "
                f"{row['top1']} {row['sha256'][:12]}"
            )
    return rows


def reference_batch(input_shape, size=8):
    """The fixed seeded input batch whose logits every entry records."""
    rng = np.random.default_rng(REFERENCE_SEED)
    return rng.normal(size=(size,) + tuple(input_shape)).astype("float32")


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
    root=None,
):
    """Write `model` as a zoo entry: weights file, sha256, card.md, index line.

    Returns the index entry (a dict). An entry with the same id is replaced.
    The whole export holds the zoo folder's lock and every file is written
    atomically, so a killed or concurrent export leaves a loadable zoo.
    """
    density = 1.0 if scheme == "dense" else validate_density(density)
    entry_id = registry.entry_id(arch, scheme, density, popup, popup_density, dataset)
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
        "top1": top1 or {},
        "top1_first1000": top1_first1000 or {},
        "recipe": recipe or {},
        "train_seconds": train_seconds,
        **_weight_counts(model),
        "exported_on": keras.backend.backend(),
        "reference_logits": [[float(v) for v in row] for row in logits],
    }
    with folder_lock(registry.zoo_root(root), purpose="being written"):
        # A new file name per content: the entry's old file stays valid until the
        # index (the commit point) names the new one, so a kill at any moment
        # leaves every indexed entry loadable.
        staged = folder / "weights.staged.npz"
        entry["sha256"] = save_weights(
            model, staged, metadata={"id": entry_id, **_identity(entry)}
        )
        name = f"weights-{entry['sha256'][:12]}.npz"
        os.replace(staged, folder / name)
        entry["file"] = f"{entry_id}/{name}"
        write_text_atomic(folder / "card.md", _card(entry, model, notes))
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


POPUP_CARD_LINE = (
    "- strong ticket: the kernels were never trained (they are what the recorded seed and "
    "initializer produce); only the popup scores and the BatchNorm moving statistics were "
    "learned. The table counts the active (top-k) weights."
)


def _card(entry, model, notes):
    lines = [
        f"# {entry['id']}",
        "",
        f"- architecture: {entry['arch']}; scheme: {entry['scheme']}; "
        f"density: {entry['density']:g}"
        + (f"; popup density: {entry['popup_density']:g}" if entry["popup"] else ""),
        f"- dataset: {entry['dataset']}; input {tuple(entry['input_shape'])}, "
        f"{entry['classes']} classes; mask seed {entry['seed']}",
        f"- weights: `{entry['file'].split('/')[-1]}`, sha256 `{entry['sha256']}`",
        f"- exported on the {entry['exported_on']} backend",
        f"- top-1 (full test set): {entry['top1'] or 'not measured'}",
        f"- recipe: {entry['recipe'] or 'not recorded'}",
    ]
    if entry["popup"]:
        lines.append(POPUP_CARD_LINE)
    if masked_layers(model):
        report = summary(model, print_fn=None)
        lines += ["", "| layer | shape | weights | kept | density |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [
            f"| {r['name']} | {r['shape']} | {r['size']} | {r['nonzeros']} | {r['density']:.4f} |"
            for r in report["layers"]
        ]
        lines.append(
            f"| total | | {report['size']} | {report['nonzeros']} | "
            f"{report['global_density']:.4f} |"
        )
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


__all__ = ["available_weights", "build", "export", "list_models", "load", "reference_batch"] + list(
    _CONSTRUCTORS
)
