"""Pruning baselines for sparse Keras 3 models on TensorFlow, PyTorch and JAX.

Keras 3 has no pruning of its own (TensorFlow Model Optimization is Keras 2
only); these work on `keras_er` masked models, numpy for scores and masks:

- `prune(model, method, density, scheme=None, data=None, seed=0, iterations=100)`:
  one-shot (or SynFlow's iterative) pruning at or after initialization, by a
  method of the open registry `METHODS` (`register_method(name, score_fn)`):
  `magnitude`, `random` (an Erdos-Renyi mask), `snip` (Lee et al. 2019),
  `synflow` (Tanaka et al. 2020). `prune(model, method, n_m=(2, 4))` keeps
  the 2 best of every 4 weights along each kernel's reduction axis (N:M).
- `GradualPruning`: a Keras callback for Zhu & Gupta 2017's cubic schedule
  during training (what `tfmot.sparsity.keras.prune_low_magnitude` with
  `PolynomialDecay(power=3)` does in Keras 2).
- `imp(model, train, rounds)`: iterative magnitude pruning with weight
  rewinding (Frankle & Carbin 2019; Frankle et al. 2020).

`keras_er.pruning.select` (scores and budgets -> masks) is numpy only; the
rest loads on first use.
"""

import importlib

_EXPORTS = {
    "prune": "keras_er.pruning.pruner",
    "GradualPruning": "keras_er.pruning.gradual",
    "cubic_density": "keras_er.pruning.gradual",
    "imp": "keras_er.pruning.lottery",
    "register_method": "keras_er.pruning.scores",
    "unregister_method": "keras_er.pruning.scores",
    "method_names": "keras_er.pruning.scores",
    "PruningContext": "keras_er.pruning.scores",
    "METHODS": "keras_er.pruning.scores",
}

__all__ = [*_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
