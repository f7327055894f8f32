"""Zoo models: build an architecture with a scheme's masks, and load published weights."""

import contextlib

import numpy as np

from keras_er import arguments
from keras_er.architectures import ARCHITECTURES
from keras_er.conversion import sparsify
from keras_er.layers.pixels import takes_raw_pixels  # noqa: F401 (part of the builder's API)
from keras_er.layers.pixels import with_raw_pixel_front
from keras_er.layers.pixels import without_preprocessing  # noqa: F401
from keras_er.layers.placeholders import placeholder_weights
from keras_er.masks.schemes import scheme_names
from keras_er.masks.schemes import validate_density
from keras_er.zoo import registry
from keras_er.zoo import weight_files
from keras_er.zoo.weights_io import load_weights

DEFAULT_INPUT_SHAPE = (32, 32, 3)
DEFAULT_CLASSES = 10


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
    include_preprocessing=True,
    dataset=None,
    dst=None,
    prune=None,
    variant=None,
    root=None,
):
    """Build `arch` with `scheme` masks; the zoo constructors call this.

    The model takes raw pixels (0-255, any numeric dtype) and normalises them
    itself, as keras.applications models do: feed it `keras_er.data.load`'s
    batches or `data.load_arrays`' uint8 images. Its last layer,
    `keras_er.layers.RawPixelGuard`, gives NaN logits for images that are
    already normalised, so that mix-up cannot pass as a low accuracy.
    `include_preprocessing=False` gives the bare network, which expects
    normalised inputs (`data.load(..., normalize=True)`).

    Args:
        arch: a name from `keras_er.models.ARCHITECTURES` (e.g. "resnet20").
        scheme: "erk", "uniform", "balanced", "pyramidal" or "dense".
        density: global fraction of conv/dense weights kept (ignored for
            "dense").
        pretrained: True loads the published weights for these settings;
            a dataset name ("cifar10", "fashion_mnist") asks for that
            dataset's entry; None or False gives a randomly initialised
            model. Without published weights the error lists what exists.
        seed: mask seed for a randomly initialised model; for a pretrained
            one, which published seed (0, the default, is the main entry;
            its masks come from its file).
        popup, popup_density: strong-ticket mode (see `keras_er.sparsify`).
        input_shape, classes: default to the entry's (pretrained) or
            (32, 32, 3) and 10.
        dst, prune: the DST or pruning settings of a published entry whose
            masks were moved or pruned (see `keras_er.zoo.load`); its masks
            then come from the weight file.
        include_preprocessing: put the dataset's input normalisation in the
            model: the entry's; for a random model, `dataset`'s.
        dataset: whose mean/std a random model (`pretrained=None`) normalises
            with; default "cifar10" for 3-channel inputs. A random model with
            other inputs needs it (or `include_preprocessing=False`).
        variant: a published entry trained with another recipe than the
            zoo's (its id's last part, e.g. "e1_limit1000"; see
            `keras_er.app.publish.recipe_variant`); None: the zoo's recipe.
        root: zoo folder (default: `keras_er.zoo.registry.zoo_root()`).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown `arch` {arch!r}; expected one of {', '.join(ARCHITECTURES)}.")
    if scheme != "dense" and scheme not in scheme_names():
        raise ValueError(f"Unknown `scheme` {scheme!r}; expected one of {', '.join((*scheme_names(), 'dense'))}.")
    if not (isinstance(pretrained, (bool, str)) or pretrained is None):
        raise ValueError(f"`pretrained` must be True, False/None or a dataset name; got {pretrained!r}.")
    pretrained = None if pretrained is False else pretrained
    seed = arguments.seed(seed)  # before the index is searched: True or 1.0 must not find seed 1's entry
    if scheme == "dense" and popup:
        raise ValueError(
            "`popup=True` needs a sparse `scheme`: popup selects weights inside an ER mask, and a dense model has none."
        )
    density = 1.0 if scheme == "dense" else validate_density(density)
    if (dst or prune) and pretrained is None:
        raise ValueError(
            "`dst`/`prune` name how a published entry's masks were made; for a new model use "
            "keras_er.dst callbacks or keras_er.pruning.prune on a random one."
        )
    if dataset is not None and pretrained is not None:
        raise ValueError("`dataset` names a random model's input statistics; a pretrained model has its entry's.")
    entry = None
    if pretrained is not None:
        wanted = pretrained if isinstance(pretrained, str) else None
        entry = registry.find_entry(
            arch, scheme, density, popup, popup_density, wanted, root, dst, prune, seed, variant=variant
        )
        input_shape = _agree(input_shape, tuple(entry["input_shape"]), "input_shape", entry)
        classes = _agree(classes, entry["classes"], "classes", entry)
        weights = weight_files.weight_path(entry, root)  # before the model is built: unavailable weights fail at once
    # Weights about to be loaded are built as zeros: their initializers would only cost time.
    with placeholder_weights() if entry is not None else contextlib.nullcontext():
        model = ARCHITECTURES[arch](tuple(input_shape or DEFAULT_INPUT_SHAPE), classes or DEFAULT_CLASSES)
        if scheme != "dense":
            model = sparsify(
                model,
                1.0 if prune else density,  # pruned masks are not an ER draw: the file holds them
                scheme,
                seed=seed,
                method="exact",
                popup=popup,
                popup_density=popup_density,
            )
    if entry is not None:
        load_weights(
            model,
            weights,
            sha256=entry["sha256"],
            expect={"id": entry["id"], **identity(entry)},
        )
    if include_preprocessing:
        channels = model.inputs[0].shape[-1]
        if entry is None and dataset is None and channels != 3:
            raise ValueError(
                f"A random model with {channels}-channel inputs normalises raw pixels with a dataset's mean/std: "
                "pass `dataset=` (e.g. 'fashion_mnist'), or include_preprocessing=False for the bare network."
            )
        model = with_preprocessing(model, *input_normalization(entry, dataset or "cifar10"))
    return model


def input_normalization(entry=None, dataset="cifar10"):
    """`(mean, std)` per channel, in pixels 0-255, of an entry (or of `dataset`)."""
    recorded = (entry or {}).get("recipe", {}).get("input_normalization")
    if recorded:
        return tuple(recorded["mean"]), tuple(recorded["std"])
    from keras_er.data.specs import get_spec

    spec = get_spec(entry["dataset"] if entry else dataset)
    return tuple(spec.mean), tuple(spec.std)


def with_preprocessing(model, mean, std):
    """`model` behind a fixed normalisation layer: raw pixels in, logits out.

    The normalisation and the guard behind the network
    (`keras_er.layers.pixels`) have no weights, so the weight file (and every
    weight path) is the bare model's.
    """
    return with_raw_pixel_front(model, mean, std)


def load(entry_id, root=None, *, include_preprocessing=True):
    """The published model `entry_id` (an id from `available_weights()`), weights loaded.

    Examples:
        >>> model = keras_er.zoo.load("resnet20_erk_d0.1_cifar10")
        >>> keras_er.masks.summary(model, print_fn=None)["nonzeros"]
        27087
    """
    entries = {entry["id"]: entry for entry in registry.load_index(root)}
    if entry_id not in entries:
        raise ValueError(f"No zoo entry {entry_id!r}; published: {', '.join(sorted(entries)) or 'none'}.")
    entry = entries[entry_id]
    return build(
        entry["arch"],
        entry["scheme"],
        entry["density"],
        pretrained=entry["dataset"],
        seed=registry.entry_seed(entry),
        popup=bool(entry.get("popup")),
        popup_density=entry.get("popup_density") or 0.5,
        include_preprocessing=include_preprocessing,
        dst=entry.get("dst"),
        prune=entry.get("prune"),
        variant=entry.get("variant"),
        root=root,
    )


def identity(entry):
    """What a weight file records about itself, to be checked against its index entry."""
    keys = ("arch", "scheme", "density", "popup", "popup_density", "dataset", "dst", "prune")
    variant = {"variant": entry["variant"]} if entry.get("variant") else {}  # files of the zoo's recipe have none
    return {**{key: entry.get(key) for key in keys}, **variant}


def _agree(requested, published, name, entry):
    if requested is not None and tuple(np.atleast_1d(requested)) != tuple(np.atleast_1d(published)):
        raise ValueError(
            f"`{name}`={requested!r} differs from the published entry {entry['id']} "
            f"({published!r}); use pretrained=None for another {name}."
        )
    return published
