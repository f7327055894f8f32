"""The one library module that may ask a framework directly, for what Keras does not expose:
tracing checks, the training state inside `fit` on JAX, loss gradients, and TensorFlow's fused batch norm.

Everything else in `keras_er` is written against `keras` and `keras.ops`.
"""

import inspect

import keras
import numpy as np


def is_tracing():
    """True while torch is compiling or exporting the code that calls this.

    Eager torch code may read tensor values in Python (`int(k)`, `if pred:`);
    code being traced by `torch.compile`/`torch.export` must not. On the XLA
    backends code is traced anyway and never takes the eager path.
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    compiler = torch.compiler
    exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or exporting())


def sync_training_state(model):
    """Make `model`'s variables hold the values training has reached, before reading or assigning them.

    Inside `fit` on JAX the trainer keeps variable values in its own state and
    only writes them back at the end of an epoch; a callback that reads or
    changes weights mid-epoch (a mask update) must sync first. After the sync
    the next step reads the variables again, so assignments take effect. A
    no-op on the other backends and outside `fit`.
    """
    if keras.backend.backend() == "jax" and getattr(model, "_jax_state", None):
        model.jax_state_sync()


def fused_batch_norm(inputs, gamma, beta, epsilon):
    """TensorFlow's fused training-mode batch norm of NHWC float32 `inputs`: (outputs, batch mean, biased variance).

    The fused op reports the Bessel-corrected variance; Keras' BatchNormalization averages the biased one into
    its moving variance, so it is converted back (x (n - 1) / n, n values per channel).
    """
    import tensorflow as tf

    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, gamma, beta, epsilon=epsilon, data_format="NHWC", is_training=True
    )
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
    return outputs, mean, variance * (count - 1.0) / tf.maximum(count, 1.0)


def loss_gradients(model, x, y, variables, loss=None, training=True):
    """Gradients of `loss(y, model(x))` with respect to `variables`, as numpy arrays.

    Keras 3 has no backend-agnostic gradient op, so this is the one place
    keras_er asks each framework for gradients (SNIP, SynFlow, RigL).
    `variables` may be non-trainable (a frozen kernel, a mask). BatchNorm
    moving statistics are left as they were.

    Args:
        loss: a Keras loss; default sparse categorical cross-entropy on logits.
        training: run the forward pass in training mode (batch statistics).
    """
    loss = _scalar(loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    backend = keras.backend.backend()
    if backend == "jax":
        gradients = _jax_gradients(model, x, y, variables, loss, training)
    else:
        saved = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
        try:
            compute = _tensorflow_gradients if backend == "tensorflow" else _torch_gradients
            gradients = compute(model, x, y, variables, loss, training)
        finally:
            for variable, value in zip(model.non_trainable_variables, saved):
                variable.assign(value)
    return [
        np.zeros(tuple(v.shape), "float32") if g is None else np.asarray(keras.ops.convert_to_numpy(g))
        for v, g in zip(variables, gradients)
    ]


def _scalar(loss):
    """`loss` averaged over the batch when it returns one value per sample (a plain function)."""
    return lambda y_true, y_pred: keras.ops.mean(loss(y_true, y_pred))


def _tensorflow_gradients(model, x, y, variables, loss, training):
    import tensorflow as tf

    if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        # Mirrored variables are read inside a replica: every replica takes the whole batch; keep the first's.
        strategy = tf.distribute.get_strategy()
        gradients = strategy.run(_tape_gradients, args=(model, x, y, variables, loss, training))
        return [None if g is None else strategy.experimental_local_results(g)[0] for g in gradients]
    return _tape_gradients(model, x, y, variables, loss, training)


def _tape_gradients(model, x, y, variables, loss, training):
    import tensorflow as tf

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for variable in variables:
            tape.watch(variable.value)
        value = loss(y, model(x, training=training))
    return tape.gradient(value, [variable.value for variable in variables])


def _torch_gradients(model, x, y, variables, loss, training):
    import torch

    tensors = [variable.value for variable in variables]
    flags = [tensor.requires_grad for tensor in tensors]
    for tensor in tensors:
        tensor.requires_grad_(True)
    try:
        value = loss(y, model(x, training=training))
        return torch.autograd.grad(value, tensors, allow_unused=True)
    finally:
        for tensor, flag in zip(tensors, flags):
            tensor.requires_grad_(flag)


def _jax_gradients(model, x, y, variables, loss, training):
    import jax

    trainable, non_trainable = model.trainable_variables, model.non_trainable_variables
    every = trainable + non_trainable
    index = {id(variable): position for position, variable in enumerate(every)}
    missing = [variable.path for variable in variables if id(variable) not in index]
    if missing:
        raise ValueError(f"`variables` must belong to the model; these do not: {missing}.")
    positions = [index[id(variable)] for variable in variables]

    def loss_of(selected):
        values = [variable.value for variable in every]
        for position, value in zip(positions, selected):
            values[position] = value
        outputs, _ = model.stateless_call(values[: len(trainable)], values[len(trainable) :], x, **flags)
        return loss(y, outputs)

    flags = {"training": training} if _accepts_training(model) else {}  # stateless_call passes it to `call` as is
    return jax.grad(loss_of)([every[position].value for position in positions])


def _accepts_training(model):
    parameters = inspect.signature(model.call).parameters.values()
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
