"""Keras callbacks for sparse models that belong to no single training method.

`MaskSummaries` puts each masked layer's density and the model's into the
epoch logs, so `keras.callbacks.TensorBoard`, `CSVLogger` and the `History`
returned by `fit` record them (what `tfmot.sparsity.keras.PruningSummaries`
writes in Keras 2).
"""

import keras

from keras_er.backend_helpers import sync_training_state
from keras_er.masks.model import require_masked_layers
from keras_er.masks.model import summary

__all__ = ["MaskSummaries"]


class MaskSummaries(keras.callbacks.Callback):
    """Add the masks' densities to the logs at every epoch end.

    Keys: `<prefix><layer path>` for each masked layer (the fraction of its
    weights the forward pass uses, as `keras_er.masks.summary` counts it; in
    popup mode the top-k of the scores) and `global_key` for the model's
    global density (`summary`'s `global_density`: weights left dense count as
    kept). The values are Python floats, so every logger takes them; the
    default prefix `density/` groups the layers in one TensorBoard section.

    List it **before** the callbacks that write the logs (`TensorBoard`,
    `CSVLogger`): Keras hands one logs dict to the callbacks in list order
    (`History`, which `fit` adds last, always sees the densities). It reads
    the masks only, so it works with any masked model on every backend: a
    copy made by `keras_er.sparsify`, a model masked in place, keras_er's own
    layers, and masks that move during training (`pruning.GradualPruning`,
    `dst.SET`/`RigL`).

    Args:
        prefix: prepended to each layer's path inside the model to make its key
            (`layer.path` without the model's own name: `"dense"`, or
            `"encoder/dense"` for a layer of a nested model `encoder`).
        global_key: key of the model's global density; None leaves it out.
        layers: whether to log each layer's density (False: only the global one).

    Examples:
        >>> from keras_er.layers import MaskedDense
        >>> model = keras.Sequential([keras.Input((4,)), MaskedDense(8, density=0.5, seed=0, name="hidden"),
        ...                           MaskedDense(2, name="head")])
        >>> model.compile("sgd", "mse")
        >>> history = model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0,
        ...                     callbacks=[keras_er.callbacks.MaskSummaries()])
        >>> {key: round(values[-1], 4) for key, values in history.history.items() if "density" in key}
        {'density/hidden': 0.5, 'density/head': 1.0, 'global_density': 0.6667}
    """

    def __init__(self, prefix="density/", global_key="global_density", layers=True):
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a str; got {prefix!r}.")
        if global_key is not None and (not isinstance(global_key, str) or not global_key):
            raise TypeError(f"`global_key` must be a non-empty str or None; got {global_key!r}.")
        if not isinstance(layers, bool):
            raise TypeError(f"`layers` must be True or False; got {layers!r}.")
        if global_key is None and not layers:
            raise ValueError("With `global_key=None` and `layers=False` there is nothing to log.")
        if global_key is not None and layers and global_key.startswith(prefix):
            raise ValueError(
                f"`global_key` ({global_key!r}) starts with `prefix` ({prefix!r}): it could equal a layer's key."
            )
        self.prefix = prefix
        self.global_key = global_key
        self.layers = layers

    def on_train_begin(self, logs=None):
        require_masked_layers(self.model)  # a model without masks fails before the first epoch

    def densities(self):
        """The densities `on_epoch_end` adds to the logs: a dict key -> float, layers in network order."""
        sync_training_state(self.model)  # JAX inside fit: read the values training has reached
        table = summary(self.model, print_fn=None)
        result = {}
        if self.layers:
            for row in table["layers"]:
                if row["masked"]:
                    result[self._unique_key(result, self.prefix + self._inner_path(row["name"]))] = row["density"]
        if self.global_key is not None:
            result[self.global_key] = table["global_density"]
        return result

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.densities())

    def _inner_path(self, path):
        head = f"{self.model.name}/"
        return path[len(head) :] if path.startswith(head) else path

    @staticmethod
    def _unique_key(taken, key):
        # Two masked layers can share a path (a subclassed model's unnamed layers); later ones get a suffix.
        if key not in taken:
            return key
        count = 1
        while f"{key}_{count}" in taken:
            count += 1
        return f"{key}_{count}"
