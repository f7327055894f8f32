"""Small models and data shared by the tests."""

import json
import os

import keras
import numpy as np
import pytest

from keras_er import BACKENDS
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D

# A test that starts its own backends in subprocesses, whatever KERAS_BACKEND this pytest runs on, would run
# once per backend pass of CI to the same effect: it runs in the first backend's pass only.
first_backend_pass_only = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", BACKENDS[0]) != BACKENDS[0] and not os.environ.get("KERAS_ER_CROSS_BACKEND"),
    reason=f"chooses its backends itself: runs once, in the {BACKENDS[0]} pass (KERAS_ER_CROSS_BACKEND=1 runs it here)",
)


def to_numpy(x):
    # A copy: on JAX/CPU convert_to_numpy can be a view of a buffer that the
    # next train step donates and overwrites, so a "before" snapshot would change.
    return np.array(keras.ops.convert_to_numpy(x), copy=True)


def images(n=16, size=8, channels=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, channels)).astype("float32")
    y = rng.integers(0, classes, size=n)
    return x, y


def masked_cnn(popup=False, seed=0, classes=4, density=0.5, popup_density=0.5):
    """Conv -> depthwise -> grouped conv -> dense, every layer masked.

    Kernel initialisers are seeded too, so a test's outcome does not depend on
    which tests ran before it (an unlucky draw once left the ReLU dead).
    """
    keras.utils.set_random_seed(1000 + seed)
    kw = dict(popup=popup, popup_density=popup_density)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            MaskedConv2D(8, 3, padding="same", activation="relu", density=density, seed=seed, **kw),
            MaskedDepthwiseConv2D(3, padding="same", density=density, seed=seed + 1, **kw),
            MaskedConv2D(8, 1, groups=2, density=density, seed=seed + 2, **kw),
            keras.layers.GlobalAveragePooling2D(),
            MaskedDense(classes, density=density, seed=seed + 3, **kw),
        ]
    )


def masked_weights(model):
    """{layer name: (kernel, mask)} as numpy, for every masked layer."""
    from keras_er.masks import masked_layers

    return {layer.name: (to_numpy(layer.kernel), to_numpy(layer.mask)) for layer in masked_layers(model)}


# Every optimiser the sparsity invariants are tested under.
OPTIMIZERS = {
    "sgd_nesterov_wd": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5),
    "lion": lambda: keras.optimizers.Lion(0.003),
    "sgd_clipnorm": lambda: keras.optimizers.SGD(0.1, momentum=0.9, clipnorm=0.5),
    "adam_global_clipnorm": lambda: keras.optimizers.Adam(0.01, global_clipnorm=0.5),
}


def synthetic_batches(n=64, batch_size=16, seed=0):
    """Seeded uint8 images and labels as shuffled, augmented `ImageBatches` (a tiny training set)."""
    from keras_er.data import ImageBatches

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return ImageBatches(
        images, rng.integers(0, 4, n), (128,) * 3, (64,) * 3, batch_size=batch_size, shuffle=True, augment=True, seed=1
    )


class StopAt(keras.callbacks.Callback):
    """Interrupt `fit` (as Ctrl-C would) when epoch `epoch` begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def tiny_cifar(folder, monkeypatch, images):
    """A synthetic cifar10.npz of `images` images (two thirds train) in $KERAS_ER_DATA, with learnable labels."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, images)
    x = (rng.integers(0, 60, (images, 32, 32, 3)) + 19 * y[:, None, None, None]).astype(np.uint8)
    cut = images * 2 // 3
    np.savez(folder / "cifar10.npz", x_train=x[:cut], y_train=y[:cut], x_test=x[cut:], y_test=y[cut:])
    monkeypatch.setenv("KERAS_ER_DATA", str(folder))
    from keras_er.data import sources

    monkeypatch.setattr(sources, "_from_tfds", lambda *a: None)
    return folder


def index_entry(arch, scheme, density, seed=0, top1=0.8, **fields):
    """A zoo index entry with what the tables and the plot read (no weights file: they never open one)."""
    from keras_er.zoo import registry

    keys = ("popup", "popup_density", "dataset", "dst", "prune", "variant")
    config = {"popup": False, "popup_density": None, "dataset": "cifar10", "dst": None, "prune": None, "variant": None}
    config.update(fields)
    entry_id = registry.entry_id(arch, scheme, density, *(config[k] for k in keys[:-1]), seed, config["variant"])
    return {
        "id": entry_id,
        "arch": arch,
        "scheme": scheme,
        "density": density,
        "seed": seed,
        "input_shape": [32, 32, 3],
        "classes": 10,
        "file": f"{entry_id}/weights.npz",
        "sha256": "0" * 64,
        "top1": {"tensorflow": top1, "torch": top1, "jax": top1},
        **config,
    }


def write_index(root, entries):
    """A zoo folder at `root` whose index.json holds `entries` (and nothing else)."""
    (root / "index.json").write_text(json.dumps({"format_version": 1, "entries": entries}))
    return root
