"""Erdos-Renyi masks: per-layer density schemes and seeded sampling, in numpy only; N:M structured masks.

`import keras_er.masks` loads no keras. The model-level operations
(`assign`, `assign_n_m`, `record_n_m`, `model_n_m`, `reduction_axis`,
`summary`, `masked_layers`) live in `keras_er.masks.model` and `keras_er.masks.n_m_model` and are reachable
from here too; touching them imports keras.
"""

from keras_er.masks.n_m import is_n_m
from keras_er.masks.n_m import sample_n_m_masks
from keras_er.masks.sampling import SAMPLING_METHODS
from keras_er.masks.sampling import sample_masks
from keras_er.masks.schemes import SCHEMES
from keras_er.masks.schemes import layer_densities
from keras_er.masks.schemes import proportional_scheme
from keras_er.masks.schemes import register_scheme
from keras_er.masks.schemes import scheme_names
from keras_er.masks.schemes import unregister_scheme

# name -> the module (keras_er.masks.<module>) of the model-level operations, which import keras
_MODEL_LEVEL = {
    "assign": "model",
    "masked_layers": "model",
    "summary": "model",
    "assign_n_m": "n_m_model",
    "model_n_m": "n_m_model",
    "record_n_m": "n_m_model",
    "reduction_axis": "n_m_model",
}

__all__ = [
    "SAMPLING_METHODS",
    "SCHEMES",
    "assign",
    "assign_n_m",
    "is_n_m",
    "layer_densities",
    "masked_layers",
    "model_n_m",
    "proportional_scheme",
    "record_n_m",
    "reduction_axis",
    "register_scheme",
    "sample_masks",
    "sample_n_m_masks",
    "scheme_names",
    "summary",
    "unregister_scheme",
]


def __getattr__(name):
    if name in _MODEL_LEVEL:
        import importlib

        return getattr(importlib.import_module(f"keras_er.masks.{_MODEL_LEVEL[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
