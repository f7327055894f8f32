"""SET and RigL: where `DynamicSparseTraining` grows the weights it has dropped.

SET (Mocanu et al., "Scalable training of artificial neural networks with
adaptive sparse connectivity", Nature Communications 2018) grows at random;
RigL (Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All
Tickets Winners", ICML 2020) where the dense loss gradient is largest. The
schedule, the drop and the bookkeeping are the base class's
(`keras_er.dst.callbacks`).
"""

import keras
import numpy as np
from keras import ops

from keras_er.arrays import numpy_copy
from keras_er.backend_helpers import loss_gradients
from keras_er.dst import updates
from keras_er.dst.callbacks import DynamicSparseTraining


class SET(DynamicSparseTraining):
    """Sparse Evolutionary Training: drop the smallest weights, grow as many at random.

    Growth is uniform among each layer's inactive positions, drawn from
    `(seed, step, layer index)`: bit-identical on every backend and in a
    resumed run. Mocanu et al. 2018, with RigL's cosine schedule (Evci et al. 2020).

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16, density=0.5, seed=0, name="hidden"),
        ...                           MaskedDense(4, density=0.5, seed=1, name="logits")])
        >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.default_rng(0).normal(size=(32, 8)), np.arange(32) % 4
        >>> dst = keras_er.dst.SET(update_every=2, seed=0)
        >>> _ = model.fit(x, y, batch_size=8, epochs=2, callbacks=[dst], verbose=0)
        >>> [record["step"] for record in dst.history]  # 8 steps, updates stop at 0.75 * 8
        [2, 4]
        >>> dst.history[0]["layers"]["hidden"]  # round(0.3 / 2 * (1 + cos(pi * 2 / 6)) * 64)
        {'active': 64, 'dropped': 14, 'grown': 14}
    """

    def growth_scores(self, layers, step, batch):
        return [
            updates.random_scores(tuple(layer.kernel_variable.shape), self.seed, step, i)
            for i, layer in enumerate(layers)
        ]


class RigL(DynamicSparseTraining):
    """Rigging the Lottery: drop the smallest weights, grow where the dense gradient is largest.

    The dense gradient (with respect to the effective weight at every
    position, masked ones included) comes from `keras_er.backend_helpers.loss_gradients`
    on one batch of `data`, with the model's compiled loss, while every mask
    is set to all ones: the kernel is exactly zero at masked positions, so the
    forward pass is unchanged and the kernel gradient is the dense one. The
    masks are restored before anything else happens. Evci et al. 2020.

    Args:
        data: required; see `DynamicSparseTraining` (pass the training data).
        loss: the loss whose gradient ranks growth; default the model's compiled loss.
        (the rest as in `DynamicSparseTraining`)

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> model = keras.Sequential([keras.Input((8,)), MaskedDense(16, density=0.5, seed=0),
        ...                           MaskedDense(4, density=0.5, seed=1)])
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.default_rng(0).normal(size=(32, 8)).astype("float32"), np.arange(32) % 4
        >>> dst = keras_er.dst.RigL(update_every=2, data=(x[:8], y[:8]))
        >>> _ = model.fit(x, y, batch_size=8, epochs=2, callbacks=[dst], verbose=0)
        >>> [record["step"] for record in dst.history]
        [2, 4]
    """

    def __init__(self, update_every=100, drop_fraction=0.3, end_fraction=0.75, seed=0, data=None, loss=None, **kwargs):
        super().__init__(update_every, drop_fraction, end_fraction, seed, data=data, **kwargs)
        if self.data is None:
            raise ValueError(
                "RigL needs `data` to compute dense gradients on: the training batches (an ImageBatches or "
                "PyDataset; the update uses the batch just trained on) or one `(x, y)` batch."
            )
        if loss is not None and not callable(loss):
            raise ValueError(f"`loss` must be a Keras loss (callable); got {loss!r}.")
        self.loss = loss

    growth_score_hint = "check the data batch (`data`) and the loss"

    def growth_scores(self, layers, step, batch):
        x, y = _batch(self.data, batch)
        saved = [numpy_copy(layer.mask) for layer in layers]
        try:
            for layer in layers:
                layer.mask.assign(ops.ones(tuple(layer.mask.shape), layer.mask.dtype))
            gradients = loss_gradients(self.model, x, y, [layer.kernel_variable for layer in layers], loss=self._loss())
        finally:
            for layer, mask in zip(layers, saved):
                layer.mask.assign(mask)
        return [np.abs(gradient) for gradient in gradients]

    def _loss(self):
        loss = self.loss if self.loss is not None else getattr(self.model, "loss", None)
        if loss is None:
            return None  # loss_gradients' default: sparse categorical cross-entropy on logits
        if isinstance(loss, str):
            return keras.losses.get(loss)
        if not callable(loss):
            raise ValueError(
                f"RigL needs one loss for its gradients; the model was compiled with {loss!r}. Pass `loss=`."
            )
        return loss


def _batch(data, batch):
    if isinstance(data, tuple):
        return data
    item = data[(batch or 0) % len(data)]
    return item[0], item[1]
