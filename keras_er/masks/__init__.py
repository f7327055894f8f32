"""Erdos-Renyi masks: per-layer density schemes and seeded sampling, in numpy only.

`import keras_er.masks` loads no keras. The model-level operations
(`assign`, `summary`, `masked_layers`) live in `keras_er.model_masks` and
are reachable from here too; touching them imports keras.
"""

from keras_er.masks.sampling import SAMPLING_METHODS
from keras_er.masks.sampling import sample_masks
from keras_er.masks.schemes import layer_densities
from keras_er.masks.schemes import SCHEMES
from keras_er.masks.schemes import proportional_scheme
from keras_er.masks.schemes import register_scheme
from keras_er.masks.schemes import scheme_names
from keras_er.masks.schemes import unregister_scheme

_MODEL_LEVEL = ("assign", "masked_layers", "summary")

__all__ = [
    "SAMPLING_METHODS",
    "SCHEMES",
    "assign",
    "layer_densities",
    "masked_layers",
    "proportional_scheme",
    "register_scheme",
    "sample_masks",
    "scheme_names",
    "summary",
    "unregister_scheme",
]


def __getattr__(name):
    if name in _MODEL_LEVEL:
        from keras_er import model_masks

        return getattr(model_masks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
