"""The numpy drop-and-grow step: exact counts, smallest magnitudes out, largest scores in."""

import numpy as np
import pytest

from keras_er.dst.updates import drop_and_grow
from keras_er.dst.updates import moves_for
from keras_er.dst.updates import random_scores


def _layer(shape=(12, 10), density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[rng.permutation(mask.size)[: int(round(density * mask.size))]] = True
    mask = mask.reshape(shape)
    kernel = rng.normal(size=shape) * mask  # masked entries are exactly zero
    return kernel, mask


@pytest.mark.parametrize("k", [0, 1, 7, 48])
def test_counts_are_kept_and_the_smallest_magnitudes_are_dropped(k):
    kernel, mask = _layer()
    scores = np.random.default_rng(1).random(mask.shape)
    new, dropped, grown = drop_and_grow(kernel, mask, scores, k)
    assert new.dtype == bool and new.sum() == mask.sum()
    assert dropped.sum() == grown.sum() == k
    assert not (dropped & ~mask).any() and not (grown & mask).any()
    np.testing.assert_array_equal(new, (mask & ~dropped) | grown)
    magnitudes = np.abs(kernel)
    if 0 < k < mask.sum():
        assert magnitudes[dropped].max() <= magnitudes[mask & ~dropped].min()


def test_rigl_grows_the_largest_scores_among_previously_inactive_positions():
    kernel, mask = _layer()
    gradient = np.abs(np.random.default_rng(2).normal(size=mask.shape))
    gradient[mask] += 100.0  # active positions score highest but cannot grow
    k = 9
    new, dropped, grown = drop_and_grow(kernel, mask, gradient, k)
    inactive_scores = np.sort(gradient[~mask])[::-1]
    np.testing.assert_array_equal(np.sort(gradient[grown])[::-1], inactive_scores[:k])
    assert not (grown & dropped).any()


def test_a_dropped_weight_is_not_grown_back_in_the_same_update():
    kernel = np.array([0.1, 5.0, 0.0, 0.0])
    mask = np.array([1, 1, 0, 0])
    scores = np.array([1e9, 1e9, 1.0, 2.0])  # the dropped weight has the highest score
    new, dropped, grown = drop_and_grow(kernel, mask, scores, 1)
    np.testing.assert_array_equal(dropped, [True, False, False, False])
    np.testing.assert_array_equal(grown, [False, False, False, True])
    np.testing.assert_array_equal(new, [False, True, False, True])


def test_ties_go_to_the_lower_flat_index():
    kernel = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    mask = np.array([1, 1, 1, 0, 0, 0])
    new, dropped, grown = drop_and_grow(kernel, mask, np.zeros(6), 2)
    np.testing.assert_array_equal(np.flatnonzero(dropped), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(grown), [3, 4])


def test_set_growth_is_seeded():
    kernel, mask = _layer(shape=(3, 3, 4, 8))
    first = drop_and_grow(kernel, mask, random_scores(mask.shape, seed=3, step=100, layer_index=1), 20).mask
    again = drop_and_grow(kernel, mask, random_scores(mask.shape, seed=3, step=100, layer_index=1), 20).mask
    np.testing.assert_array_equal(first, again)
    other = [
        drop_and_grow(kernel, mask, random_scores(mask.shape, *args), 20).mask
        for args in [(4, 100, 1), (3, 200, 1), (3, 100, 2)]
    ]
    assert all((first != mask_).any() for mask_ in other)


def test_set_growth_is_uniform_over_inactive_positions():
    mask = np.zeros(20, bool)
    mask[:10] = True
    kernel = np.arange(1.0, 21.0) * mask
    hits = np.zeros(20)
    for step in range(2000):
        hits += drop_and_grow(kernel, mask, random_scores((20,), 0, step, 0), 3).grown
    assert hits[:10].sum() == 0
    assert np.allclose(hits[10:] / 2000, 0.3, atol=0.05)


def test_moves_for_rounds_and_caps():
    assert moves_for(0.3, 10, 100) == 3
    assert moves_for(0.26, 10, 100) == 3
    assert moves_for(0.5, 10, 2) == 2  # a nearly dense layer
    assert moves_for(0.5, 10, 0) == 0  # a dense layer: nothing to grow into


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 61}, "`k`"),
        ({"k": -1}, "`k`"),
        ({"k": 1.0}, "`k`"),
        ({"mask": np.full((12, 10), 2)}, "binary"),
        ({"scores": np.zeros((10, 12))}, "shape"),
    ],
)
def test_bad_inputs(kwargs, match):
    kernel, mask = _layer(density=0.5)
    args = {"kernel": kernel, "mask": mask, "scores": np.zeros(mask.shape), "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        drop_and_grow(**args)
