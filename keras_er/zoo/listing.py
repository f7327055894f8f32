"""What the zoo offers: one constructor per architecture and scheme, and the published weights."""

from keras_er.architectures import ARCHITECTURES
from keras_er.masks.schemes import scheme_names
from keras_er.zoo import registry
from keras_er.zoo.builder import build


def _constructor(arch, scheme):
    if scheme == "dense":

        def constructor(*, pretrained=True, input_shape=None, classes=None, include_preprocessing=True, root=None):
            return build(
                arch,
                "dense",
                pretrained=pretrained,
                input_shape=input_shape,
                classes=classes,
                include_preprocessing=include_preprocessing,
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
                root=root,
            )

    constructor.__name__ = constructor.__qualname__ = f"{arch}_{scheme}"
    constructor.__doc__ = f"{arch} with {scheme} masks. Arguments as `keras_er.zoo.build`."
    return constructor


def constructor_names():
    """`<arch>_<scheme>` for every registered architecture and scheme, and `<arch>_dense`."""
    return sorted(f"{arch}_{scheme}" for arch in ARCHITECTURES for scheme in (*scheme_names(), "dense"))


def get_constructor(name):
    """The constructor `name` (e.g. "resnet20_erk"), or None if there is no such one."""
    for scheme in (*scheme_names(), "dense"):
        arch = name[: -len(scheme) - 1]
        if name.endswith("_" + scheme) and arch in ARCHITECTURES:
            return _constructor(arch, scheme)
    return None


def list_models():
    """Names of every zoo constructor, e.g. `resnet20_erk`."""
    return constructor_names()


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
            print_fn(f"{row['id']:<40} {row['density']:<6g} {row['dataset']:<14} {row['top1']} {row['sha256'][:12]}")
    return rows
