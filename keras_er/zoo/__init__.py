"""The keras_er model zoo: `<arch>_<scheme>(density=...)` constructors.

Every architecture in `keras_er.architectures.ARCHITECTURES` comes with one
constructor per density scheme, `resnet20_erk`, `resnet20_balanced`, ...,
and a dense reference, `resnet20_dense` (registered architectures and
schemes too). `pretrained=True` loads the published weights for those
settings (sha256-checked, offline from the zoo folder); `pretrained=None`
gives a randomly initialised ER-sparse model. Models take raw pixels 0-255.

Examples:
    >>> model = keras_er.zoo.resnet20_erk(density=0.1, pretrained=None)
    >>> keras_er.masks.summary(model, print_fn=None)["global_density"]
    0.1...
"""

import importlib

from keras_er.zoo import registry
from keras_er.zoo.listing import available_weights
from keras_er.zoo.listing import constructor_names
from keras_er.zoo.listing import get_constructor
from keras_er.zoo.listing import list_models

# Loaded on first use, so that reading the index (`keras-er list`) imports no keras.
_FROM_MODULES = {
    "build": "builder",
    "load": "builder",
    "export": "exporter",
    "reference_batch": "exporter",
    "reference_pixels": "exporter",
}
_SUBMODULES = ("builder", "cards", "exporter", "listing", "registry", "report", "weight_files", "weights_io")

_FUNCTIONS = [
    "available_weights",
    "build",
    "export",
    "list_models",
    "load",
    "reference_batch",
    "reference_pixels",
    "registry",
]


def __getattr__(name):
    if name in _FROM_MODULES:
        return getattr(importlib.import_module(f"keras_er.zoo.{_FROM_MODULES[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_er.zoo.{name}")
    constructor = get_constructor(name)  # resnet20_erk, vgg16_dense, ...
    if constructor is None:
        raise AttributeError(f"module 'keras_er.zoo' has no attribute {name!r}")
    return constructor


def __dir__():
    return sorted(set(globals()) | set(_FROM_MODULES) | set(constructor_names()))


__all__ = [*_FUNCTIONS, *constructor_names()]
