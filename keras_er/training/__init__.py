"""Training: the paper's recipe, `fit` with exact resume, and run folders."""

from keras_er.training.loop import fit
from keras_er.training.recipe import Recipe

__all__ = ["Recipe", "fit"]
