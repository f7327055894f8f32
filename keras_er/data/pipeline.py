"""Batches for `fit` on every backend: shuffling, CIFAR augmentation, normalisation.

`ImageBatches` is a `keras.utils.PyDataset`, so the same object feeds `fit`
on TensorFlow, PyTorch and JAX. Shuffling and augmentation are numpy
functions of `(seed, epoch, batch index)` alone, so a resumed run sees
exactly the batches an uninterrupted one would have seen.
"""

import keras
import numpy as np

from keras_er.data.sources import load_arrays
from keras_er.data.specs import (
    NORMALIZATION,  # noqa: F401 (a live view, re-exported)
    get_spec,
)


class ImageBatches(keras.utils.PyDataset):
    """Normalised, optionally shuffled and augmented batches of an image array.

    Args:
        images: uint8 array (N, H, W, C).
        labels: int array (N,).
        mean, std: per-channel normalisation constants (pixel units).
        batch_size: images per batch; the last batch may be smaller.
        shuffle: a new order every epoch, from `(seed, epoch)`.
        augment: pad-4 random crop + horizontal flip (CIFAR recipe).
        seed: seed of shuffling and augmentation.

    The epoch is set by `keras_er.training` (a callback calls `set_epoch`
    at the start of each epoch), so resuming at epoch k replays epoch k.
    """

    def __init__(self, images, labels, mean, std, batch_size=128, shuffle=False, augment=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        self.images, self.labels = images, labels
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
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
        x = (x.astype(np.float32) - self.mean) / self.std
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
):
    """Load a dataset for `fit`/`evaluate` on any backend.

    Args:
        name: "cifar10", "cifar100", "fashion_mnist", "mnist" or a registered name.
        split: "train" or "test".
        batch_size: images per batch.
        augment: pad-4 crop + flip; default: True for the CIFAR train split.
        shuffle: default: True for the train split.
        seed: seed of shuffling and augmentation.
        limit: keep only the first `limit` images (smoke runs).
        as_numpy: return normalised `(x, y)` arrays instead of batches.
        data_dir: tensorflow-datasets `data_dir`.
        download: when no offline copy exists, download it once into the Keras
            cache (`$KERAS_HOME/datasets`; see `keras_er.data.sources`); False:
            offline only, else `DatasetNotFoundError`.

    Returns:
        An `ImageBatches` (a `keras.utils.PyDataset`), or `(x, y)` arrays.

    Example:

    >>> train = keras_er.data.load("cifar10", "train", limit=1024)
    >>> x, y = train[0]
    >>> x.shape, x.dtype
    ((128, 32, 32, 3), dtype('float32'))
    """
    images, labels = load_arrays(name, split, data_dir, download)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"`limit` must be a positive integer or None; got {limit!r}.")
        images, labels = images[:limit], labels[:limit]
    spec = get_spec(name)
    mean, std = spec.mean, spec.std
    if as_numpy:
        return (images.astype(np.float32) - np.float32(mean)) / np.float32(std), labels
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
