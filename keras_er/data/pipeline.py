"""Batches for `fit` on every backend: shuffling, CIFAR augmentation, raw or normalised pixels.

One pixel convention: every model keras_er builds (the zoo, `keras_er.zoo.build`, `keras-er train`) takes raw
pixels, 0-255, and normalises them itself, as keras.applications models do; so `load` yields raw pixels
(float32). A bare network (`include_preprocessing=False`) takes normalised images: ask for them with
`normalize=True`. The two cannot be mixed unnoticed: the batches say which they hold (`normalized`), keras_er's
training and evaluation refuse a model of the other kind, and a raw-pixel model given normalised images
returns NaN logits (`keras_er.layers.RawPixelGuard`).

`ImageBatches` is a `keras.utils.PyDataset`, so the same object feeds `fit`
on TensorFlow, PyTorch and JAX. Shuffling and augmentation are numpy
functions of `(seed, epoch, batch index)` alone, so a resumed run sees
exactly the batches an uninterrupted one would have seen.
"""

import keras
import numpy as np

from keras_er import arguments
from keras_er.data.sources import load_arrays
from keras_er.data.specs import NORMALIZATION  # noqa: F401 (a live view, re-exported)
from keras_er.data.specs import get_spec


class ImageBatches(keras.utils.PyDataset):
    """Float32 batches of an image array, raw or normalised, optionally shuffled and augmented.

    Args:
        images: uint8 array (N, H, W, C).
        labels: int array (N,).
        mean, std: per-channel normalisation constants (pixel units); None
            (both): raw pixels 0-255, what keras_er's models take.
        batch_size: images per batch; the last batch may be smaller.
        shuffle: a new order every epoch, from `(seed, epoch)`.
        augment: pad-4 random crop + horizontal flip (CIFAR recipe).
        seed: seed of shuffling and augmentation.

    The epoch is set by `keras_er.training` (a callback calls `set_epoch`
    at the start of each epoch), so resuming at epoch k replays epoch k.
    """

    def __init__(
        self, images, labels, mean=None, std=None, batch_size=128, shuffle=False, augment=False, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        batch_size = arguments.integer(batch_size, "batch_size", minimum=1)
        if (mean is None) != (std is None):
            raise ValueError("Give both `mean` and `std` (normalised batches) or neither (raw pixels).")
        self.images, self.labels = images, labels
        self.normalized = mean is not None
        self.mean = np.asarray(0.0 if mean is None else mean, np.float32)
        self.std = np.asarray(1.0 if std is None else std, np.float32)
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        n = len(self.labels)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.permutation(n) if self.shuffle else np.arange(n)

    def __len__(self):
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.images[chosen]
        if self.augment:
            x = pad_crop_flip(x, np.random.default_rng([self.seed, self.epoch, index, 1]))
        x = x.astype(np.float32)
        if self.normalized:
            x = (x - self.mean) / self.std
        return x, self.labels[chosen]


def pad_crop_flip(images, rng, pad=4):
    """Random `pad`-pixel-padded crop and horizontal flip of a uint8 batch."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def load(
    name,
    split="train",
    batch_size=128,
    augment=None,
    shuffle=None,
    seed=0,
    limit=None,
    as_numpy=False,
    data_dir=None,
    download=True,
    normalize=False,
):
    """Load a dataset for `fit`/`evaluate` on any backend: raw pixels, as keras_er's models take.

    Args:
        name: "cifar10", "cifar100", "fashion_mnist", "mnist" or a registered name.
        split: "train" or "test".
        batch_size: images per batch.
        augment: pad-4 crop + flip; default: True for the CIFAR train split.
        shuffle: default: True for the train split.
        seed: seed of shuffling and augmentation.
        limit: keep only the first `limit` images (smoke runs).
        as_numpy: return float32 `(x, y)` arrays instead of batches.
        data_dir: tensorflow-datasets `data_dir`.
        download: when no offline copy exists, download it once into the Keras
            cache (`$KERAS_HOME/datasets`; see `keras_er.data.sources`); False:
            offline only, else `DatasetNotFoundError`.
        normalize: False (default): raw pixels 0-255, for every model keras_er
            builds (they normalise inside). True: `(x - mean) / std` with the
            dataset's statistics, for a bare network
            (`keras_er.zoo.build(..., include_preprocessing=False)`); a
            keras_er model given these returns NaN logits.

    Returns:
        An `ImageBatches` (a `keras.utils.PyDataset`; `.normalized` says which
        pixels it holds), or `(x, y)` arrays.

    Examples:
        >>> train = keras_er.data.load("cifar10", "train", limit=1024)
        >>> x, y = train[0]
        >>> x.shape, x.dtype, float(x.min()) >= 0, train.normalized
        ((128, 32, 32, 3), dtype('float32'), True, False)
        >>> x, y = keras_er.data.load("cifar10", "test", limit=256, normalize=True)[0]  # for a bare network
        >>> bool(x.min() < 0)
        True
    """
    if not isinstance(normalize, bool):
        raise TypeError(f"`normalize` must be True (for a bare network) or False (raw pixels); got {normalize!r}.")
    images, labels = load_arrays(name, split, data_dir, download)
    if arguments.integer(limit, "limit", minimum=1, allow_none=True) is not None:
        images, labels = images[:limit], labels[:limit]
    spec = get_spec(name)
    mean, std = (spec.mean, spec.std) if normalize else (None, None)
    if as_numpy:
        x = images.astype(np.float32)
        return ((x - np.float32(mean)) / np.float32(std) if normalize else x), labels
    train = split == "train"
    return ImageBatches(
        images,
        labels,
        mean,
        std,
        batch_size,
        shuffle=train if shuffle is None else shuffle,
        augment=(train and spec.augment) if augment is None else augment,
        seed=seed,
    )
