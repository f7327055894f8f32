"""`GradualPruning`: Zhu & Gupta's cubic density schedule as a Keras callback, on every backend."""

import keras
import numpy as np

from keras_er import arguments
from keras_er.backend_helpers import sync_training_state
from keras_er.masks.schemes import validate_density
from keras_er.masks.schemes import validate_scheme
from keras_er.pruning import scores as scores_lib
from keras_er.pruning import select
from keras_er.pruning.pruner import model_density
from keras_er.pruning.pruner import prunable_layers
from keras_er.pruning.pruner import prune
from keras_er.pruning.pruner import refuse_n_m


def cubic_density(step, initial_density, final_density, begin_step, end_step):
    """Zhu & Gupta's schedule: `final + (initial - final) * (1 - (t - begin) / (end - begin)) ** 3`.

    `initial_density` before `begin_step`, `final_density` from `end_step` on.

    >>> [round(cubic_density(t, 1.0, 0.1, 0, 100), 4) for t in (0, 50, 100, 200)]
    [1.0, 0.2125, 0.1, 0.1]
    """
    initial_density = validate_density(initial_density, "initial_density")
    final_density = validate_density(final_density, "final_density")
    step = _step_count(step, "step")
    begin_step, end_step = _steps(begin_step, end_step)
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_density + (initial_density - final_density) * (1.0 - progress) ** 3


class GradualPruning(keras.callbacks.Callback):
    """Gradual pruning during `fit` (Zhu & Gupta, "To prune, or not to prune", 2017).

    Every `frequency` optimizer steps from `begin_step` to `end_step` (and at
    `end_step`), the masks are pruned with `keras_er.pruning.prune(model,
    method, d(t), scheme)` to the cubic schedule
    `d(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** 3`,
    `t` the optimizer's step count after the step (`model.optimizer.iterations`,
    so a resumed run continues its schedule). Only active weights can be kept:
    the density never rises again, and an update whose `d(t)` is not below
    the model's density changes nothing (so a model already below
    `final_density` is left as it is).

    The model is a `keras_er` masked model: from dense, one with all-ones masks
    (`keras_er.sparsify(model, density=1.0)`, or a zoo/architecture builder at
    `density=1.0`); from an Erdos-Renyi start (GraNet-style: Liu et al.,
    "Sparse Training via Boosting Pruning Plasticity with Neuroregeneration",
    NeurIPS 2021), pass `initial_density=None` to start from the model's own
    density when training begins (for a resumable run, pass that number
    instead: a resumed model is already pruned).

    For users of TensorFlow Model Optimization (Keras 2 only):
    `prune_low_magnitude(model, pruning_schedule=PolynomialDecay(
    initial_sparsity=s0, final_sparsity=s1, begin_step=b, end_step=e,
    power=3, frequency=f))` with its `UpdatePruningStep` callback corresponds
    to `GradualPruning(initial_density=1 - s0, final_density=1 - s1,
    begin_step=b, end_step=e, frequency=f, scheme="uniform")`: tfmot prunes
    each layer to the same sparsity, which is `scheme="uniform"`; the default
    `scheme=None` ranks all layers together by magnitude. There is no wrapper
    to strip: the pruned model is an ordinary masked model (save, export to
    the zoo). tfmot updates the masks before the step whose count is due,
    this callback after it. Masked weights and their optimizer slots are
    zeroed when a mask changes, so they stay exactly zero (SGD momentum, Adam, ...).

    A model recorded as N:M (`keras_er.sparsify(n_m=)`, `prune(n_m=)`) is
    refused when training begins: the schedule's densities above and below
    `N / M` are not N:M. Prune it once with `prune(model, method, n_m=...)`
    instead (tfmot's `sparsity_m_by_n` ignores its schedule's sparsity too).

    Args:
        initial_density: density at `begin_step` (None: the model's density when training begins).
        final_density: density from `end_step` on.
        begin_step, end_step: optimizer steps where the schedule starts and ends.
        frequency: optimizer steps between mask updates.
        method: a `keras_er.pruning.METHODS` name (`magnitude`: Zhu & Gupta's).
        scheme: None (global ranking) or a density scheme name (per-layer budgets).
        data, seed: passed to `prune` (data for `snip`, seed for `random`); a method that needs
            data (`snip`) without it is refused here, not at its first update.

    Attributes:
        updates: one dict per mask update: `step`, `target` (`d(t)`) and `density` (the model's after it).

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> from keras_er.pruning import GradualPruning
        >>> model = keras.Sequential([keras.Input((4,)), MaskedDense(8, seed=0), MaskedDense(2, seed=1)])
        >>> model.compile("sgd", "mse")
        >>> pruning = GradualPruning(1.0, 0.25, begin_step=0, end_step=4, frequency=2)
        >>> _ = model.fit(np.ones((8, 4)), np.ones((8, 2)), batch_size=2, verbose=0, callbacks=[pruning])
        >>> [(u["step"], round(u["target"], 4), round(u["density"], 4)) for u in pruning.updates]
        [(0, 1.0, 1.0), (2, 0.3438, 0.3333), (4, 0.25, 0.25)]
    """

    def __init__(
        self,
        initial_density=1.0,
        final_density=0.1,
        begin_step=0,
        end_step=1000,
        frequency=100,
        method="magnitude",
        scheme=None,
        data=None,
        seed=0,
    ):
        super().__init__()
        self.initial_density = None if initial_density is None else validate_density(initial_density, "initial_density")
        self.final_density = validate_density(final_density, "final_density")
        if self.initial_density is not None and self.final_density > self.initial_density:
            raise ValueError(
                f"`final_density` ({final_density}) must not exceed `initial_density` ({initial_density}): "
                "pruning only removes weights."
            )
        self.begin_step, self.end_step = _steps(begin_step, end_step)
        self.frequency = _step_count(frequency, "frequency")
        if self.frequency < 1:
            raise ValueError(f"`frequency` must be a positive integer; got {frequency!r}.")
        scores_lib.get_method(method)  # an unknown method fails here, not mid-training
        self.method = method.lower()
        self.scheme = None if scheme is None else validate_scheme(scheme)
        scores_lib.check_method_data(method, data, "GradualPruning")  # not after the first steps of training
        self.data, self.seed = data, scores_lib.validate_seed(seed)
        self.updates = []
        self._step = self._epoch_start = 0
        self._last_point = None
        self._start_density = self.initial_density

    def density_at(self, step):
        """The scheduled density after `step` optimizer steps."""
        initial = self._start_density if self._start_density is not None else self.initial_density
        if initial is None:
            raise ValueError("With `initial_density=None` the schedule starts when training begins.")
        return cubic_density(step, initial, self.final_density, self.begin_step, self.end_step)

    def update_point(self, step):
        """The last mask-update step at or before `step` (None before `begin_step`)."""
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def on_train_begin(self, logs=None):
        prunable_layers(self.model)
        refuse_n_m(self.model, "GradualPruning")
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise ValueError("GradualPruning needs a compiled model (it counts `model.optimizer.iterations`).")
        sync_training_state(self.model)
        self._step = int(np.asarray(keras.ops.convert_to_numpy(optimizer.iterations)))
        self._epoch_start = self._step
        self._last_point = None
        if self.initial_density is None:
            self._start_density = model_density(self.model)
        self._maybe_prune()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of this call within the epoch (several with steps_per_execution).
        self._step = self._epoch_start + int(batch) + 1
        self._maybe_prune()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.updates:
            logs["density"] = self.updates[-1]["density"]

    def _maybe_prune(self):
        point = self.update_point(self._step)
        if point is None or point == self._last_point:
            return
        self._last_point = point
        target = self.density_at(point)
        sync_training_state(self.model)  # JAX: the trainer's values into the variables first
        kept, size = _active_count(self.model)
        if select.global_count([size], target) < kept:
            prune(self.model, self.method, target, scheme=self.scheme, data=self.data, seed=self.seed)
            kept, size = _active_count(self.model)
        self.updates.append({"step": point, "target": target, "density": kept / size})


def _active_count(model):
    masks = [np.asarray(keras.ops.convert_to_numpy(layer.mask)) for layer in prunable_layers(model)]
    return sum(int(np.count_nonzero(m)) for m in masks), sum(m.size for m in masks)


def _steps(begin_step, end_step):
    begin, end = _step_count(begin_step, "begin_step"), _step_count(end_step, "end_step")
    if end <= begin:
        raise ValueError(f"`end_step` ({end_step}) must be greater than `begin_step` ({begin_step}).")
    return begin, end


def _step_count(value, name):
    return arguments.integer(value, name)
