"""keras_er: random (Erdos-Renyi) sparse networks for Keras 3.

Gadhikar, Mukherjee & Burkholz, "Why Random Pruning Is All We Need to Start
Sparse" (ICML 2023). Works on the TensorFlow, PyTorch and JAX backends.

Subpackages load on first use (`keras_er.zoo`, `keras_er.layers`, ...), so
`import keras_er` is quick and imports no framework until one is needed.
"""

import importlib

__version__ = "0.1.0"

BACKENDS = ("tensorflow", "torch", "jax")  # the Keras backends keras_er supports and tests

_SUBMODULES = (
    "callbacks",
    "data",
    "deploy",
    "dst",
    "layers",
    "masks",
    "models",
    "pruning",
    "replacements",
    "training",
    "zoo",
)

__all__ = ["BACKENDS", "__version__", "export", "sparsify", "strip", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_er.{name}")
    if name == "sparsify":
        return importlib.import_module("keras_er.conversion").sparsify
    if name == "export":
        return importlib.import_module("keras_er.deploy").export
    if name == "strip":
        return importlib.import_module("keras_er.stripping").strip
    raise AttributeError(f"module 'keras_er' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
