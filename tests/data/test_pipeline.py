import numpy as np
import pytest

from keras_er import data
from keras_er.data import ImageBatches
from keras_er.data import pad_crop_flip


def batches(**kwargs):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    args = dict(mean=(0, 0, 0), std=(1, 1, 1), batch_size=16, **kwargs)
    return ImageBatches(images, np.arange(50), **args), images


def test_every_output_is_a_shifted_possibly_flipped_crop_of_the_padded_image():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (20, 8, 8, 3), dtype=np.uint8)
    out = pad_crop_flip(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    for original, crop in zip(padded, out):
        candidates = [
            window
            for dy in range(9)
            for dx in range(9)
            for window in (original[dy : dy + 8, dx : dx + 8], original[dy : dy + 8, dx : dx + 8][:, ::-1])
        ]
        assert any(np.array_equal(crop, c) for c in candidates)


def test_shuffle_is_a_permutation_per_epoch_and_reproducible():
    dataset, _ = batches(shuffle=True, seed=3)
    labels = lambda: np.concatenate([dataset[i][1] for i in range(len(dataset))])
    epoch0 = labels()
    assert sorted(epoch0.tolist()) == list(range(50)) and len(dataset) == 4
    dataset.set_epoch(1)
    epoch1 = labels()
    assert not np.array_equal(epoch0, epoch1)
    dataset.set_epoch(0)
    np.testing.assert_array_equal(labels(), epoch0)


def test_augmentation_depends_only_on_seed_epoch_and_batch():
    a, _ = batches(augment=True, seed=1)
    b, _ = batches(augment=True, seed=1)
    np.testing.assert_array_equal(a[2][0], b[2][0])
    b.set_epoch(5)
    assert not np.array_equal(a[2][0], b[2][0])


def test_normalisation_and_no_augmentation_by_default():
    dataset, images = batches(shuffle=False)
    dataset.mean, dataset.std = np.float32([10, 20, 30]), np.float32([2, 4, 5])
    x, y = dataset[0]
    np.testing.assert_allclose(x, (images[:16] - [10, 20, 30]) / [2, 4, 5], rtol=1e-6)
    assert y.tolist() == list(range(16))
    with pytest.raises(IndexError):
        dataset[4]


def test_load_defaults_limit_and_errors(tmp_path, monkeypatch):
    x = np.zeros((40, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=x, y_train=np.zeros(40), x_test=x, y_test=np.zeros(40))
    monkeypatch.setenv("KERAS_ER_DATA", str(tmp_path))
    from keras_er.data import sources

    monkeypatch.setattr(sources, "_from_tfds", lambda *a: None)
    train = data.load("cifar10", "train", batch_size=8, limit=20)
    assert train.shuffle and train.augment and len(train) == 3
    test = data.load("cifar10", "test")
    assert not test.shuffle and not test.augment
    xs, ys = data.load("cifar10", "test", as_numpy=True)
    assert xs.dtype == np.float32 and xs.shape == (40, 32, 32, 3)
    with pytest.raises(ValueError, match="`limit`"):
        data.load("cifar10", limit=0)
    with pytest.raises(ValueError, match="`batch_size`"):
        data.load("cifar10", batch_size=0)
