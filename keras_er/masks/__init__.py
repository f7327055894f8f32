"""Erdos-Renyi masks: per-layer density schemes, seeded sampling, model-level assignment."""

from keras_er.masks.model_masks import assign
from keras_er.masks.model_masks import masked_layers
from keras_er.masks.model_masks import summary
from keras_er.masks.sampling import METHODS
from keras_er.masks.sampling import sample_masks
from keras_er.masks.schemes import SCHEMES
from keras_er.masks.schemes import layer_densities

__all__ = [
    "METHODS",
    "SCHEMES",
    "assign",
    "layer_densities",
    "masked_layers",
    "sample_masks",
    "summary",
]
