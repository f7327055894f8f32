"""DynamicSparseTraining: the Keras callback base that moves the weights of keras_er masked layers.

Every `update_every` optimizer steps, each masked layer drops the fraction
`drop_fraction_at(step)` (a cosine decay, see `keras_er.dst.schedule`) of its
active weights with the smallest magnitude and grows as many where it had
none: at random (SET) or where the dense loss gradient is largest (RigL).
Per-layer counts (the scheme's ERK/uniform/... profile) stay exactly as they
are; grown weights start at zero with zero optimizer slots. A model whose
masks are recorded as N:M (`keras_er.sparsify(n_m=)`, `pruning.prune(n_m=)`,
`keras_er.masks.record_n_m`) stays N:M: each group grows back, in the same
group, as many weights as it lost (`updates.drop_and_grow_n_m`). A NaN or
infinite weight or growth score is refused (a ValueError naming the layer
and the method) before any mask changes. Where to grow is
each method's `growth_scores`: SET and RigL live in `keras_er.dst.growth`.
"""

import keras
from keras import ops

from keras_er import arguments
from keras_er.arrays import numpy_copy
from keras_er.backend_helpers import sync_training_state
from keras_er.dst import checks
from keras_er.dst import schedule
from keras_er.dst import updates
from keras_er.layers.weight_setup import zero_optimizer_slots
from keras_er.masks.n_m_model import model_n_m
from keras_er.masks.n_m_model import reduction_axis
from keras_er.pruning import select


class DynamicSparseTraining(keras.callbacks.Callback):
    """Drop-and-grow mask updates during `fit`; subclasses say where to grow (`growth_scores`).

    Args:
        update_every: optimizer steps between two mask updates. Steps are
            counted by `model.optimizer.iterations`, so a resumed run keeps
            its schedule.
        drop_fraction: the fraction of each layer's active weights moved at
            step 0; it decays on a cosine to 0 at `end_fraction * total_steps`.
        end_fraction: the part of training after which the masks stay fixed.
        seed: seed of the random choices (SET's growth).
        total_steps: the run's length in optimizer steps; by default
            `epochs * steps` from `fit`. Needed outside `fit`.
        data: the batches growth scores are computed on, where a method needs
            them (RigL): an `(x, y)` pair of arrays (always that batch) or an
            indexable batch source such as `keras_er.data.ImageBatches` or any
            `keras.utils.PyDataset`; an update after batch `b` of an epoch uses
            `data[b % len(data)]`. Pass the training data itself, and the
            update sees the batch the optimizer has just stepped on (as in
            `keras_er.training.fit`; with Keras' own `fit` on a PyDataset,
            pass `shuffle=False` or Keras reorders the batches). This keeps
            the update a function of the run's seeds, so a resumed run
            repeats it exactly.
        verbose: 1 prints one line per update.

    Attributes:
        history: one dict per update: `step`, `fraction` and `layers`
            (`{layer name: {"active": n, "dropped": k, "grown": k}}`).
    """

    def __init__(
        self,
        update_every=100,
        drop_fraction=0.3,
        end_fraction=0.75,
        seed=0,
        total_steps=None,
        data=None,
        verbose=0,
    ):
        super().__init__()
        schedule.check_arguments(update_every, drop_fraction, end_fraction)
        arguments.seed(seed)
        if total_steps is not None:
            total_steps = schedule.check_total_steps(total_steps)
        if verbose not in (0, 1):
            raise ValueError(f"`verbose` must be 0 or 1; got {verbose!r}.")
        self.update_every = int(update_every)
        self.drop_fraction = float(drop_fraction)
        self.end_fraction = float(end_fraction)
        self.seed = int(seed)
        self.total_steps = total_steps
        self.data = checks.check_data(data)
        self.verbose = verbose
        self.history = []
        self._step = None  # optimizer steps taken, counted between updates
        self._batches_done = 0

    # -- what a method decides -------------------------------------------------------------------

    def growth_scores(self, layers, step, batch):
        """One array per layer (the kernel's shape): the inactive positions of largest score grow."""
        raise NotImplementedError(f"{type(self).__name__} must define `growth_scores(layers, step, batch)`.")

    # -- Keras hooks -------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._layers()
        self._resolved_total_steps()
        sync_training_state(self.model)
        self._step = self._iterations()

    def on_epoch_begin(self, epoch, logs=None):
        self._batches_done = 0

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the epoch done so far (several per call
        # with `steps_per_execution`), so the count needs no sync on JAX.
        before = self._step
        self._step += batch + 1 - self._batches_done
        self._batches_done = batch + 1
        crossed = self._step // self.update_every > before // self.update_every
        if crossed and self._step < self.end_fraction * self._resolved_total_steps():
            self.update(batch=batch)

    # -- the update --------------------------------------------------------------------------------

    def update(self, step=None, batch=None):
        """Drop and grow in every masked layer now; returns the update's `history` record.

        Inside `fit` the callback calls this itself. Outside, `set_model(model)`
        first (and give `total_steps`); `step` defaults to the optimizer's
        `iterations`, `batch` picks the batch of `data` (default 0).
        """
        layers = self._layers()
        model = self.model
        sync_training_state(model)  # on JAX the trainer holds the values mid-epoch
        if step is None:
            step = self._iterations()
        step = self._step = int(step)
        total = self._resolved_total_steps()
        fraction = schedule.drop_fraction_at(step, total, self.drop_fraction, self.end_fraction)
        kernels = [numpy_copy(layer.kernel_variable) for layer in layers]
        masks = [numpy_copy(layer.mask).astype(bool) for layer in layers]
        patterns = _patterns(model, layers)
        moves = [updates.moves_for(fraction, int(m.sum()), int(m.size - m.sum())) for m in masks]
        scores = self.growth_scores(layers, step, batch) if any(moves) else [None] * len(layers)
        names = _layer_names(layers)
        self._check_finite(names, kernels, masks, scores, moves)  # before any mask changes
        optimizer = getattr(model, "optimizer", None)
        record = {"step": step, "fraction": fraction, "layers": {}}
        for layer, name, kernel, mask, score, k, pattern in zip(layers, names, kernels, masks, scores, moves, patterns):
            if k:
                if pattern is None:
                    change = updates.drop_and_grow(kernel, mask, score, k)
                else:
                    change = updates.drop_and_grow_n_m(kernel, mask, score, k, *pattern)
                kept = change.mask & ~change.grown
                # Grown weights start at exactly zero (masked entries already are), dropped ones become zero.
                layer.kernel_variable.assign((kernel * kept).astype(kernel.dtype))
                layer.assign_mask(change.mask, optimizer=optimizer)  # slots of dropped weights zeroed
                zero_optimizer_slots(optimizer, layer.kernel_variable, ~change.grown)  # and of grown ones
            record["layers"][name] = {"active": int(mask.sum()), "dropped": k, "grown": k}
        self.history.append(record)
        if self.verbose:
            moved = sum(item["dropped"] for item in record["layers"].values())
            active = sum(item["active"] for item in record["layers"].values())
            print(
                f"{type(self).__name__} step {record['step']}: drop fraction {fraction:.4f}, "
                f"moved {moved} of {active} active weights in {len(layers)} layers"
            )
        return record

    # -- helpers -----------------------------------------------------------------------------------

    # The end of the message when growth scores are NaN or infinite (RigL: the data batch).
    growth_score_hint = "check the method's growth_scores"

    def _check_finite(self, names, kernels, masks, scores, moves):
        """Refuse NaN/inf where a moving layer ranks: its active weights (the drop) and its growth scores."""
        method = type(self).__name__
        moving = [i for i, k in enumerate(moves) if k]
        select.check_finite_scores(
            [kernels[i][masks[i]] for i in moving],
            [names[i] for i in moving],
            f"{method} drop scores (|w| of the active weights)",
            "the kernel has non-finite weights (did training diverge? lower the learning rate)",
        )
        select.check_finite_scores(
            [scores[i] for i in moving], [names[i] for i in moving], f"{method} growth scores", self.growth_score_hint
        )

    def _layers(self):
        return checks.checked_layers(self.model, type(self).__name__)

    def _resolved_total_steps(self):
        if self.total_steps is not None:
            return self.total_steps
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        if not epochs or not steps:
            raise ValueError(
                f"{type(self).__name__} cannot tell the run's length (fit gave epochs={epochs!r}, "
                f"steps={steps!r}); pass `total_steps=`."
            )
        return int(epochs) * int(steps)

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                f"Model '{self.model.name}' has no optimizer to count steps with; compile it or pass `step=`."
            )
        return int(ops.convert_to_numpy(optimizer.iterations))

    def get_config(self):
        return {
            "update_every": self.update_every,
            "drop_fraction": self.drop_fraction,
            "end_fraction": self.end_fraction,
            "seed": self.seed,
            "total_steps": self.total_steps,
        }


def _patterns(model, layers):
    """Per layer: `((N, M), axis)` for a layer recorded as N:M (its groups then stay N:M), else None."""
    if model_n_m(model) is None:  # also refuses a recorded pattern its mask no longer has
        return [None] * len(layers)
    return [
        None if getattr(layer, "n_m", None) is None else (tuple(layer.n_m), reduction_axis(layer)) for layer in layers
    ]


def _layer_names(layers):
    names = [layer.name for layer in layers]
    if len(set(names)) < len(names):  # nested models may repeat names
        return [layer.path for layer in layers]
    return names
