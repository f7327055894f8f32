"""Pruning methods: an open registry of score functions, and the built-in ones.

A method is a function `score_fn(context) -> scores`: it gets a
`PruningContext` (the model, its masked layers, the currently active
positions, the target density, data, seed, ...) and returns one numpy array
of scores per masked layer, the kernel's shape; `prune` keeps the best active
weights. Scores are numpy; gradients come only from
`keras_er.backend_helpers.loss_gradients`, so every method runs on
TensorFlow, PyTorch and JAX.

Built-in methods:

- `magnitude`: `|w|` (Han et al. 2015; the criterion of IMP and of
  Zhu & Gupta 2017's gradual pruning).
- `random`: seeded uniform scores; keeping the top ones is drawing a uniform
  random subset, i.e. an Erdos-Renyi mask (per-layer budgets with a scheme).
- `snip`: connection sensitivity `|dL/dw * w|` on one batch (Lee, Ajanthan &
  Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
  ICLR 2019).
- `synflow`: iterative synaptic flow `|dR/dw * w|`, data-free (Tanaka, Kunin,
  Yamins & Ganguli, "Pruning neural networks without any data by iteratively
  conserving synaptic flow", NeurIPS 2020); in `keras_er.pruning.synflow`.

Example (a method that prefers the weights closest to zero):

>>> register_method("smallest", lambda context: [-np.abs(k) for k in context.kernels()])
>>> "smallest" in method_names()
True
>>> unregister_method("smallest")
"""

import dataclasses
import numbers

import numpy as np

from keras_er.lazy_registry import check_new_entry
from keras_er.pruning import select
from keras_er.pruning.synflow import synflow_scores

# keras (and the framework) load on first use, so the registry can be listed
# without them (`keras-er --help`).

_METHODS = {}  # name -> score_fn(context)


def register_method(name, score_fn):
    """Add a pruning method under `name` (`prune`, `GradualPruning` and `imp` pick it up).

    `score_fn(context)` gets a `PruningContext` and returns one score array
    per masked layer (the kernel's shape); the best active weights are kept.
    An iterative method may narrow `context.active` (with `context.select`)
    before returning its last scores, as `synflow` does.
    """
    check_new_entry("pruning method", name, score_fn, _METHODS, "score_fn")
    _METHODS[name] = score_fn


def unregister_method(name):
    """Remove a method added with `register_method`."""
    _METHODS.pop(name, None)


def method_names():
    """The names of every registered method, built-in ones first."""
    return tuple(_METHODS)


def get_method(name):
    """The score function registered as `name`, or a ValueError naming the known methods."""
    if not isinstance(name, str) or name.lower() not in _METHODS:
        raise ValueError(f"Unknown pruning `method` {name!r}; expected one of {', '.join(_METHODS)}.")
    return _METHODS[name.lower()]


def __getattr__(name):
    if name == "METHODS":  # read at access time, so registered methods are included
        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass
class PruningContext:
    """What a score function gets.

    Attributes:
        model: the Keras model being pruned.
        layers: its masked layers, in network order.
        active: one bool array per layer: the positions that may be kept
            (the current masks). An iterative method may narrow it.
        density: the target density (fraction of all masked-layer weights).
        scheme: None (one global ranking) or a density scheme name (per-layer budgets).
        data: `(x, y)` arrays or a `keras.utils.PyDataset`, or None.
        seed: seed of random choices.
        iterations: iterations of an iterative method (SynFlow).
        loss: a Keras loss `loss(y, y_pred)` for data-driven methods, or None (cross-entropy on logits).
        method: the method's name, for messages.
    """

    model: object
    layers: list
    active: list
    density: float
    scheme: object = None
    data: object = None
    seed: int = 0
    iterations: int = 100
    loss: object = None
    method: str = ""

    def kernels(self):
        """The masked layers' kernels, as numpy arrays (copies)."""
        return [_numpy(layer.kernel) for layer in self.layers]

    def select(self, scores, density):
        """Masks keeping the best of `self.active` at `density` (global, or per layer with the scheme)."""
        if self.scheme is None:
            sizes = [a.size for a in self.active]
            return select.select_global(scores, self.active, select.global_count(sizes, density))
        shapes = [a.shape for a in self.active]
        counts = select.layer_counts(shapes, density, self.scheme, [a.sum() for a in self.active])
        return select.select_per_layer(scores, self.active, counts)

    def batch(self):
        """The first batch `(x, y)` of `data`; a ValueError if the method got none."""
        if self.data is None:
            raise ValueError(
                f"Pruning method {self.method!r} needs data: pass `data=(x, y)` (numpy arrays) or a "
                "keras.utils.PyDataset such as keras_er.data.ImageBatches."
            )
        return first_batch(self.data)


def first_batch(data):
    """`(x, y)` from an `(x, y)` tuple of arrays or from the first batch of a `keras.utils.PyDataset`."""
    import keras

    if isinstance(data, keras.utils.PyDataset):
        if len(data) == 0:
            raise ValueError("`data` is an empty PyDataset.")
        data = data[0]
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            "`data` must be an (x, y) tuple of arrays or a keras.utils.PyDataset (keras_er.data.ImageBatches); "
            f"got {type(data).__name__}."
        )
    return data[0], data[1]


def magnitude_scores(context):
    """`|w|`: keep the largest weights."""
    return [np.abs(kernel) for kernel in context.kernels()]


def random_scores(context):
    """Seeded uniform scores (layer `i` from the `i`-th child of `SeedSequence(seed)`): an ER mask."""
    children = np.random.SeedSequence(int(context.seed)).spawn(len(context.layers))
    return [np.random.Generator(np.random.PCG64(child)).random(a.shape) for child, a in zip(children, context.active)]


def snip_scores(context):
    """SNIP's connection sensitivity `|dL/dw * w|` on the first batch of `data` (Lee et al. 2019).

    The forward pass runs in training mode (batch statistics, as the paper's
    networks at initialization); BatchNorm moving statistics are left as they were.
    """
    from keras_er.backend_helpers import loss_gradients

    x, y = context.batch()
    kernels = [layer.kernel for layer in context.layers]
    gradients = loss_gradients(context.model, x, y, kernels, loss=context.loss, training=True)
    return [np.abs(g * w) for g, w in zip(gradients, context.kernels())]


def _numpy(variable):
    import keras

    return np.array(keras.ops.convert_to_numpy(variable), copy=True)


def validate_iterations(iterations):
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise ValueError(f"`iterations` must be a positive integer; got {iterations!r}.")
    return int(iterations)


register_method("magnitude", magnitude_scores)
register_method("random", random_scores)
register_method("snip", snip_scores)
register_method("synflow", synflow_scores)
