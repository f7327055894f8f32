"""keras_er: random (Erdos-Renyi) sparse networks for Keras 3.

Gadhikar, Mukherjee & Burkholz, "Why Random Pruning Is All We Need to Start
Sparse" (ICML 2023). Works on the TensorFlow, PyTorch and JAX backends.
"""

__version__ = "0.1.0"

from keras_er import data
from keras_er import layers
from keras_er import masks
from keras_er import models
from keras_er.sparsify import sparsify
from keras_er import training
from keras_er import zoo

__all__ = ["__version__", "data", "layers", "masks", "models", "sparsify", "training", "zoo"]
