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

import numpy as np

from keras_er import arguments
from keras_er.arrays import numpy_copy
from keras_er.masks.n_m import keep_top_n_m
from keras_er.pruning import checks
from keras_er.pruning import select
from keras_er.pruning.synflow import synflow_scores
from keras_er.registry import Registry

# keras (and the framework) load on first use, so the registry can be listed
# without them (`keras-er --help`).

_NEEDS_DATA = {"snip"}  # methods that score on a batch of `data`


def register_method(name, score_fn, *, needs_data=False):
    """Add a pruning method under `name` (`prune`, `GradualPruning` and `imp` pick it up).

    `score_fn(context)` gets a `PruningContext` and returns one score array
    per masked layer (the kernel's shape); the best active weights are kept.
    An iterative method may narrow `context.active` (with `context.select`)
    before returning its last scores, as `synflow` does. Scores must be
    finite: a NaN or infinite score is refused, naming the layer. With
    `needs_data=True` (a method that scores on `context.batch()`),
    `prune` and `GradualPruning` refuse to run it without `data`.
    """
    if not isinstance(needs_data, bool):
        raise TypeError(f"`needs_data` must be True or False; got {needs_data!r}.")
    METHODS.register(name, score_fn)
    if needs_data:
        _NEEDS_DATA.add(name)


def unregister_method(name):
    """Remove a method added with `register_method` (built-in ones stay)."""
    METHODS.unregister(name)
    _NEEDS_DATA.discard(name)


def needs_data(name):
    """Whether method `name` scores on a batch of `data` (`snip`)."""
    return name.lower() in _NEEDS_DATA


def check_method_data(method, data, caller):
    """Refuse a data-driven `method` without `data`, and `data` of the wrong kind, before anything runs."""
    if data is None:
        if needs_data(method):
            raise ValueError(
                f"{caller}: pruning method {method.lower()!r} needs data: pass `data=(x, y)` (numpy arrays) or a "
                "keras.utils.PyDataset such as keras_er.data.ImageBatches."
            )
        return
    checks.check_data_kind(data)


def method_names():
    """The names of every method, built-in ones first."""
    return tuple(METHODS)


def get_method(name):
    """The score function registered as `name`, or a ValueError naming the known methods."""
    return METHODS.lookup(name.lower() if isinstance(name, str) else name, "method")


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
        n_m: None, or `(N, M)`: `select` keeps the `N` best of every group of `M`.
        axes: with `n_m`, each layer's grouping axis (None: the layer keeps its active weights).
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
    n_m: object = None
    axes: object = None

    def kernels(self):
        """The masked layers' kernels, as numpy arrays (copies)."""
        return [numpy_copy(layer.kernel_variable) for layer in self.layers]

    def select(self, scores, density):
        """Masks keeping the best of `self.active` at `density` (global, or per layer with the scheme).

        With `n_m`, the `N` best active weights of every group instead (`density` is `N / M`).

        Non-finite scores are refused (a ValueError naming the layer and the method).
        """
        checks.check_scores(self.method, scores, [layer.name for layer in self.layers])
        if self.n_m is not None:
            return [
                active.copy() if axis is None else keep_top_n_m(score, active, self.n_m, axis)
                for score, active, axis in zip(scores, self.active, self.axes)
            ]
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
        return checks.first_batch(self.data)


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
    kernels = [layer.kernel_variable for layer in context.layers]
    gradients = loss_gradients(context.model, x, y, kernels, loss=context.loss, training=True)
    return [np.abs(g * w) for g, w in zip(gradients, context.kernels())]


def validate_seed(seed):
    return arguments.seed(seed)


def validate_iterations(iterations):
    return arguments.integer(iterations, "iterations", minimum=1)


METHODS = Registry(
    "pruning method",
    {"magnitude": magnitude_scores, "random": random_scores, "snip": snip_scores, "synflow": synflow_scores},
)
"""Pruning method name -> `score_fn(context)`; `register_method` adds one."""
