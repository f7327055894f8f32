"""What the zoo offers: one constructor per architecture and scheme, and the published weights."""

from keras_er import BACKENDS
from keras_er.architectures import ARCHITECTURES
from keras_er.masks.schemes import scheme_names
from keras_er.zoo import registry
from keras_er.zoo import report
from keras_er.zoo import weight_files


def build(*args, **kwargs):
    """`keras_er.zoo.build`, imported on first call (it imports keras; listing the zoo does not)."""
    from keras_er.zoo.builder import build

    return build(*args, **kwargs)


def _constructor(arch, scheme):
    if scheme == "dense":

        def constructor(
            *,
            pretrained=True,
            seed=0,
            input_shape=None,
            classes=None,
            include_preprocessing=True,
            dataset=None,
            root=None,
        ):
            return build(
                arch,
                "dense",
                pretrained=pretrained,
                seed=seed,
                input_shape=input_shape,
                classes=classes,
                include_preprocessing=include_preprocessing,
                dataset=dataset,
                root=root,
            )

    else:

        def constructor(
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
            root=None,
        ):
            return build(
                arch,
                scheme,
                density,
                pretrained=pretrained,
                seed=seed,
                popup=popup,
                popup_density=popup_density,
                input_shape=input_shape,
                classes=classes,
                include_preprocessing=include_preprocessing,
                dataset=dataset,
                root=root,
            )

    constructor.__name__ = constructor.__qualname__ = f"{arch}_{scheme}"
    constructor.__module__ = "keras_er.zoo"
    constructor.__doc__ = _docstring(arch, scheme)
    return constructor


def _docstring(arch, scheme):
    name = f"{arch}_{scheme}"
    if scheme == "dense":
        what, call = f"A dense `{arch}`", f"{name}(pretrained=None)"
        own_args = "        seed: for a pretrained model, which published seed (a dense model has no masks to draw).\n"
    else:
        what = f"`{arch}` with `{scheme}` Erdos-Renyi masks"
        call = f"{name}(density=0.1, pretrained=None)"
        own_args = (
            "        density: global fraction of the conv/dense weights kept, in (0, 1].\n"
            "        seed: the masks' seed (for a pretrained model: which published seed).\n"
            "        popup, popup_density: strong-ticket mode (see `keras_er.sparsify`).\n"
        )
    return (
        f"{what}: a Keras model that takes raw pixels (0-255) and normalises them itself.\n\n"
        "    Args:\n"
        f"{own_args}"
        "        pretrained: True: the published weights for these settings (sha256-checked; the error lists\n"
        "            what is published); a dataset name: that dataset's entry; None: random initialisation.\n"
        "        input_shape, classes: default to the entry's, else (32, 32, 3) and 10.\n"
        "        include_preprocessing: False gives the bare network (it expects normalised inputs).\n"
        "        dataset: whose mean/std a random model normalises with (default cifar10 for RGB inputs).\n"
        "        root: zoo folder (default: the package's).\n\n"
        f"    The same as `keras_er.zoo.build({arch!r}, {scheme!r}, ...)`.\n\n"
        "    Examples:\n"
        f"        >>> model = keras_er.zoo.{call}\n"
        "        >>> tuple(model.output.shape)\n"
        "        (None, 10)\n"
    )


def constructor_names():
    """`<arch>_<scheme>` for every registered architecture and scheme, and `<arch>_dense`."""
    return sorted(f"{arch}_{scheme}" for arch in ARCHITECTURES for scheme in (*scheme_names(), "dense"))


_CONSTRUCTORS = {}  # (arch, scheme) -> constructor: one function object per name


def get_constructor(name):
    """The constructor `name` (e.g. "resnet20_erk"), the same object at every call, or None if there is none."""
    for scheme in (*scheme_names(), "dense"):
        arch = name[: -len(scheme) - 1]
        if name.endswith("_" + scheme) and arch in ARCHITECTURES:
            if (arch, scheme) not in _CONSTRUCTORS:
                _CONSTRUCTORS[arch, scheme] = _constructor(arch, scheme)
            return _CONSTRUCTORS[arch, scheme]
    return None


def list_models():
    """Names of every zoo constructor, e.g. `resnet20_erk`."""
    return constructor_names()


def available_weights(root=None, print_fn=None):
    """One row per zoo entry: what `keras-er list` shows.

    Each row has id, arch, scheme, density (the constructor's, popup's ER
    density for a popup entry), popup_density (None unless popup),
    final_density (of the weights used: the README table's), dataset, top1
    (per backend), sha256, and weights: where the file comes from
    (`weight_files.weights_status`, e.g. "in the package" or "not distributed:
    reproduce with the card's command"). `print_fn` (e.g. `print`) receives
    the rows as an aligned table, header first.
    """
    entries = registry.load_index(root)
    rows = [
        {
            "id": e["id"],
            "arch": e["arch"],
            "scheme": e["scheme"],
            "density": e["density"],
            "popup_density": e.get("popup_density") if e.get("popup") else None,
            "final_density": report.final_density(e),
            "dataset": e["dataset"],
            "top1": e.get("top1", {}),
            "sha256": e["sha256"],
            "weights": weight_files.weights_status(e, root),
        }
        for e in entries
    ]
    if print_fn is not None and rows:
        for line in _table(entries, rows):
            print_fn(line)
    return rows


def _table(entries, rows):
    labels = report.BACKEND_LABELS
    header = ["id", "scheme", "density", "dataset", *(f"top-1 % {labels[b]}" for b in BACKENDS), "weights"]
    cells = [
        [
            row["id"],
            report.scheme_text(entry),
            f"{row['final_density']:g}",
            row["dataset"],
            *(report.percent(row["top1"].get(backend), missing="-") for backend in BACKENDS),
            row["weights"],
        ]
        for entry, row in zip(entries, rows)
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    numeric = {2, 4, 5, 6}  # right-aligned, as the README's table

    def line(values):
        text = [v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(text).rstrip()

    return [line(header), *(line(values) for values in cells)]
