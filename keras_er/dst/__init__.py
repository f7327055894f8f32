"""Dynamic sparse training: SET and RigL callbacks that move weights of ER-masked models during `fit`.

Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets
Winners" (ICML 2020). Start from any keras_er masked model (an ER mask from
`keras_er.zoo.build`, `keras_er.sparsify` or masked layers by hand) and pass
a callback to `fit` (Keras' or `keras_er.training.fit`)::

    keras_er.training.fit(model, train, recipe, callbacks=[keras_er.dst.RigL(update_every=100, data=train)])

Methods are registered by name (`METHODS`, `register_method`, `get`), so the
CLI can offer them; `method_names()` and the schedule and update modules load
no keras. The callbacks (`SET`, `RigL`, `DynamicSparseTraining`) load keras
on first use.
"""

import importlib

from keras_er.registry import Lazy
from keras_er.registry import Registry

_CALLBACKS = {
    "DynamicSparseTraining": "keras_er.dst.callbacks",
    "SET": "keras_er.dst.growth",
    "RigL": "keras_er.dst.growth",
}


METHODS = Registry(
    "DST method", {"set": Lazy("keras_er.dst.growth", "SET"), "rigl": Lazy("keras_er.dst.growth", "RigL")}
)
"""DST method name -> callback class (built-ins imported when used)."""


def method_names():
    """The names `get` accepts, built-in first (loads no keras)."""
    return list(METHODS)


def register_method(name, cls):
    """Add a DST method under `name`: `cls(**kwargs)` must give a Keras callback (`get` calls it).

    A subclass of `DynamicSparseTraining` that defines `growth_scores` is the usual choice.
    """
    METHODS.register(name, cls)


def unregister_method(name):
    """Remove a method added with `register_method` (built-in ones stay)."""
    METHODS.unregister(name)


def get(name, **kwargs):
    """The callback of DST method `name` (`"set"`, `"rigl"`, or a registered one), built with `kwargs`.

    Examples:
        >>> keras_er.dst.get("set", update_every=50).update_every
        50
    """
    return METHODS.lookup(name, "method")(**kwargs)


def __getattr__(name):
    if name in _CALLBACKS:
        return getattr(importlib.import_module(_CALLBACKS[name]), name)
    raise AttributeError(f"module 'keras_er.dst' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "DynamicSparseTraining",
    "RigL",
    "SET",
    "get",
    "method_names",
    "register_method",
    "unregister_method",
]


def __dir__():
    return sorted(set(globals()) | set(__all__))
