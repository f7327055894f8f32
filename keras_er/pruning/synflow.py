"""SynFlow: iterative, data-free pruning scores (registered as `synflow` by `keras_er.pruning.scores`).

Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by
iteratively conserving synaptic flow" (NeurIPS 2020). keras loads on first
use, so the method registry can be listed without it.
"""

import numpy as np

from keras_er.arrays import numpy_copy
from keras_er.pruning.checks import check_scores
from keras_er.pruning.checks import first_batch


def synflow_scores(context):
    """SynFlow (Tanaka et al. 2020): iterative, data-free, exponential schedule.

    Every floating-point weight of the model is replaced by its absolute value
    (BatchNorm runs in inference mode), the input of the network (behind the
    raw-pixel front of a keras_er model) is all ones, and `R = sum(model(ones))`;
    the scores are `|dR/dw * w|`. Iteration
    `k = 1..iterations` prunes to `d0 * (density / d0) ** (k / iterations)`,
    `d0` the starting density (`density ** (k / iterations)` from a dense
    model); the last iteration's scores are returned and `prune` applies the
    target. Every weight is restored afterwards (signs included); the masks of
    the intermediate iterations only live in `context.active`. Scores that
    overflow float32 are refused (a ValueError naming the layer).
    """
    import keras

    from keras_er.backend_helpers import loss_gradients
    from keras_er.layers.pixels import without_preprocessing

    # The network itself, without a raw-pixel front: its input is the all-ones SynFlow linearises at
    # (through the front, ones would become negative and the ReLUs would pass no flow).
    model = without_preprocessing(context.model)
    ones = np.ones((1, *_input_shape(model, context.data)), dtype="float32")
    zero_labels = np.zeros((1,), dtype="float32")
    kernels = [layer.kernel_variable for layer in context.layers]
    start = sum(int(a.sum()) for a in context.active) / sum(a.size for a in context.active)
    floating = [w for w in model.weights if keras.backend.is_float_dtype(w.dtype)]
    saved = [numpy_copy(w) for w in floating]
    try:
        for weight, value in zip(floating, saved):
            weight.assign(np.abs(value))
        for step in range(1, context.iterations + 1):
            for layer, active in zip(context.layers, context.active):
                layer.mask.assign(active.astype(numpy_copy(layer.mask).dtype))
            gradients = loss_gradients(model, ones, zero_labels, kernels, loss=_synaptic_flow, training=False)
            scores = [np.abs(g * numpy_copy(k)) for g, k in zip(gradients, kernels)]
            check_scores("synflow", scores, [layer.name for layer in context.layers])  # before the masks move
            if step == context.iterations:
                return scores
            density = start * (context.density / start) ** (step / context.iterations)
            context.active = context.select(scores, density)
    finally:
        for weight, value in zip(floating, saved):
            weight.assign(value)


def _synaptic_flow(y_true, y_pred):
    """SynFlow's `R`: the sum of the outputs (the labels are ignored)."""
    import keras

    return sum(keras.ops.sum(output) for output in keras.tree.flatten(y_pred))


def _input_shape(model, data):
    inputs = getattr(model, "inputs", None) if model.built else None
    if inputs and len(inputs) == 1 and all(d is not None for d in tuple(inputs[0].shape)[1:]):
        return tuple(inputs[0].shape)[1:]
    if data is not None:
        return tuple(np.shape(first_batch(data)[0]))[1:]
    raise ValueError(
        "SynFlow needs the model's input shape (one input, no unknown dimension besides the batch); "
        "give the model a keras.Input, or pass `data` to take the shape from its first batch."
    )
