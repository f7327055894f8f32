"""`imp`: iterative magnitude pruning with weight rewinding (lottery tickets), a plain loop over `fit`."""

import numbers

import keras

from keras_er import arguments
from keras_er.arrays import numpy_copy
from keras_er.backend_helpers import sync_training_state
from keras_er.masks.schemes import validate_scheme
from keras_er.pruning.pruner import model_density
from keras_er.pruning.pruner import prunable_layers
from keras_er.pruning.pruner import prune
from keras_er.pruning.pruner import refuse_n_m


def imp(
    model,
    train,
    rounds,
    density_per_round=0.8,
    rewind_epoch=0,
    fit_fn=None,
    recipe=None,
    scheme=None,
    callback=None,
):
    """Iterative magnitude pruning with rewinding; returns one record per round.

    Each round trains the model, prunes it by magnitude to
    `density_per_round` times its current density (only active weights can
    be kept), and rewinds the surviving weights - and every other weight:
    biases, BatchNorm - to their saved values; pruned weights stay 0. The
    saved values are the initial ones (`rewind_epoch=0`: Frankle & Carbin,
    "The Lottery Ticket Hypothesis", ICLR 2019) or those after
    `rewind_epoch` epochs of the first round's training (Frankle, Dziugaite,
    Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket
    Hypothesis", ICML 2020). After the last round the model is the rewound
    ticket at density `d0 * density_per_round ** rounds`: train it as usual.

    Args:
        model: a built `keras_er` masked model (a dense start: density 1, e.g.
            `keras_er.sparsify(model, density=1.0)`).
        train: the training data, passed to the fit function.
        rounds: number of train-prune-rewind rounds.
        density_per_round: the fraction of the active weights each round keeps, in (0, 1).
        rewind_epoch: 0 rewinds to the weights before training; `k > 0` to
            those after epoch `k` of the first round. Later rounds train from
            the rewound weights with the whole recipe again (the learning-rate
            schedule is not rewound).
        fit_fn: `fit_fn(model, train, round_index)` trains one round and
            returns anything (a Keras `History` or a dict of metrics is
            recorded); with `rewind_epoch > 0` the first round is called
            with a `callbacks=[...]` keyword that it must pass to `model.fit`.
            It should start each round with a fresh optimizer (compile).
            Default: `keras_er.training.fit(model, train, recipe)`.
        recipe: the `keras_er.training.Recipe` of the default fit function.
        scheme: None (global ranking, each layer keeps at least one weight)
            or a density scheme name (per-layer budgets), as in `prune`.
        callback: called as `callback(record, model)` after each round (log, save).

    Returns:
        A list of dicts, one per round: `round`, `trained_density` (the
        density it trained at), `density` (after pruning), `layer_densities`
        and `metrics` (the fit result's final values, or None).

    Example (a stand-in for training that nudges every weight):

    >>> from keras_er.layers import MaskedDense
    >>> from keras_er.pruning import imp
    >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16, seed=0), MaskedDense(4, seed=1)])
    >>> def fit_fn(model, train, round_index):
    ...     for w in model.trainable_weights:
    ...         w.assign(w + 0.01)
    ...     return {"loss": 1.0 / (round_index + 1)}
    >>> records = imp(model, None, rounds=2, fit_fn=fit_fn)
    >>> [(r["round"], r["density"] * 192, r["metrics"]) for r in records]  # 192 weights: 154 = round(0.8 * 192), ...
    [(0, 154.0, {'loss': 1.0}), (1, 123.0, {'loss': 0.5})]
    """
    rounds = _positive_int(rounds, "rounds")
    if isinstance(density_per_round, bool) or not isinstance(density_per_round, numbers.Real):
        raise TypeError(f"`density_per_round` must be a number in (0, 1); got {density_per_round!r}.")
    if not 0.0 < float(density_per_round) < 1.0:
        raise ValueError(f"`density_per_round` must be in (0, 1); got {density_per_round!r}.")
    arguments.integer(rewind_epoch, "rewind_epoch")
    if fit_fn is not None and not callable(fit_fn):
        raise TypeError(f"`fit_fn` must be callable; got {fit_fn!r}.")
    if fit_fn is not None and recipe is not None:
        raise ValueError("Pass either `fit_fn` or `recipe` (the recipe of the default fit function), not both.")
    scheme = None if scheme is None else validate_scheme(scheme)
    prunable_layers(model)
    refuse_n_m(model, "imp")
    sync_training_state(model)
    saved = _snapshot(model) if rewind_epoch == 0 else None
    records = []
    for round_index in range(rounds):
        saver = _RewindPoint(rewind_epoch) if saved is None else None
        result = _train_round(model, train, round_index, fit_fn, recipe, saver)
        if saver is not None:
            if saver.weights is None:
                raise ValueError(
                    f"`rewind_epoch`={rewind_epoch}, but the first round ended before that epoch "
                    "(does `fit_fn` pass its `callbacks` to model.fit?)."
                )
            saved = saver.weights
        sync_training_state(model)
        trained_density = model_density(model)
        densities = prune(model, "magnitude", trained_density * float(density_per_round), scheme=scheme)
        rewind(model, saved)
        record = {
            "round": round_index,
            "trained_density": trained_density,
            "density": model_density(model),
            "layer_densities": densities,
            "metrics": final_metrics(result),
        }
        records.append(record)
        if callback is not None:
            callback(record, model)
    return records


def rewind(model, saved):
    """Set every weight of `model` to `saved` (from `model.weights`), keeping the current masks.

    Kernel entries outside the masks are 0, and the compiled optimizer's slots for them too.
    """
    layers = prunable_layers(model)
    masks = [numpy_copy(layer.mask) for layer in layers]
    for weight, value in zip(model.weights, saved):
        weight.assign(value)
    for layer, mask in zip(layers, masks):
        layer.assign_mask(mask, optimizer=getattr(model, "optimizer", None))


def final_metrics(result):
    """The last value of each metric of a Keras `History`, a dict of metrics as is, otherwise None."""
    history = getattr(result, "history", None)
    if isinstance(history, dict):
        return {name: float(values[-1]) for name, values in history.items() if len(values)}
    if isinstance(result, dict):
        return dict(result)
    return None


class _RewindPoint(keras.callbacks.Callback):
    """Keeps a copy of the model's weights at the end of epoch `epoch` (counted from 1)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            sync_training_state(self.model)
            self.weights = _snapshot(self.model)


def _snapshot(model):
    return [numpy_copy(weight) for weight in model.weights]


def _train_round(model, train, round_index, fit_fn, recipe, saver):
    callbacks = [] if saver is None else [saver]
    if fit_fn is None:
        from keras_er.training import fit

        return fit(model, train, recipe, callbacks=callbacks)
    if saver is None:
        return fit_fn(model, train, round_index)
    return fit_fn(model, train, round_index, callbacks=callbacks)


def _positive_int(value, name):
    return arguments.integer(value, name, minimum=1)
