"""N:M masks in numpy: validation, seeded sampling, the pattern check, per-group top-N."""

import hashlib

import numpy as np
import pytest

from keras_er.masks import is_n_m
from keras_er.masks import sample_n_m_masks
from keras_er.masks.n_m import group_counts
from keras_er.masks.n_m import keep_top_n_m
from keras_er.masks.n_m import validate_n_m


@pytest.mark.parametrize("n_m", [(2, 4), [1, 2], (4, 8), (np.int64(3), 4)])
def test_valid_patterns(n_m):
    assert validate_n_m(n_m) == (int(n_m[0]), int(n_m[1]))


@pytest.mark.parametrize("n_m", [(2.0, 4), (True, 4), (2, "4"), "24", 2, (2, 4, 8), None])
def test_non_int_patterns_are_type_errors(n_m):
    with pytest.raises(TypeError, match="`n_m`"):
        validate_n_m(n_m)


@pytest.mark.parametrize("n_m", [(0, 4), (-1, 4), (4, 4), (5, 4), (2, -4)])
def test_out_of_range_patterns_are_value_errors(n_m):
    with pytest.raises(ValueError, match=r"`n_m` must be \(N, M\) with 1 <= N < M"):
        validate_n_m(n_m)


@pytest.mark.parametrize(
    "shape, axis, n_m",
    [((16, 8), 0, (2, 4)), ((3, 3, 8, 5), 2, (2, 4)), ((3, 3, 5, 8), 3, (1, 4)), ((16, 4, 8), 0, (4, 8))],
)
def test_every_group_keeps_exactly_n(shape, axis, n_m):
    (mask,) = sample_n_m_masks([shape], [axis], n_m, seed=3)
    assert mask.shape == shape and mask.dtype == bool
    counts = group_counts(mask, n_m[1], axis)
    assert counts.size == mask.size // n_m[1]
    assert np.all(counts == n_m[0])
    assert is_n_m(mask, n_m, axis)
    assert mask.sum() == mask.size * n_m[0] // n_m[1]


def test_groups_are_consecutive_along_the_axis():
    (mask,) = sample_n_m_masks([(8, 2)], [0], (1, 4), seed=0)
    assert [int(mask[0:4, j].sum()) for j in range(2)] == [1, 1]
    assert [int(mask[4:8, j].sum()) for j in range(2)] == [1, 1]
    assert not is_n_m(mask, (1, 4), axis=1)  # length 2 is no multiple of 4


def test_seeded_masks_are_fixed():
    """The same seed draws the same masks on every machine and backend: a fixed checksum."""
    masks = sample_n_m_masks([(16, 8), (3, 3, 8, 4)], [0, 2], (2, 4), seed=7)
    digest = hashlib.sha256(b"".join(np.packbits(m).tobytes() for m in masks)).hexdigest()
    assert digest[:16] == SEED_7_DIGEST
    again = sample_n_m_masks([(16, 8), (3, 3, 8, 4)], [0, 2], (2, 4), seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    other = sample_n_m_masks([(16, 8), (3, 3, 8, 4)], [0, 2], (2, 4), seed=8)
    assert not np.array_equal(masks[0], other[0])


SEED_7_DIGEST = "1967282134c4237f"


def test_layer_mask_does_not_depend_on_later_layers():
    first = sample_n_m_masks([(16, 8)], [0], (2, 4), seed=1)[0]
    both = sample_n_m_masks([(16, 8), (8, 4)], [0, 0], (2, 4), seed=1)[0]
    assert np.array_equal(first, both)


def test_no_axis_or_non_multiple_is_dense():
    dense_axis, short = sample_n_m_masks([(5, 3), (6, 4)], [None, 0], (2, 4), seed=0)
    assert dense_axis.all() and short.all()


def test_bad_seed_and_lengths():
    with pytest.raises(ValueError, match="`seed`"):
        sample_n_m_masks([(4, 4)], [0], (2, 4), seed=-1)
    with pytest.raises(ValueError, match="`axes`"):
        sample_n_m_masks([(4, 4)], [0, 1], (2, 4))


def test_is_n_m():
    assert is_n_m(np.array([1, 1, 0, 0, 0, 1, 0, 1]), (2, 4), axis=0)
    assert not is_n_m(np.array([1, 1, 1, 0, 0, 0, 0, 1]), (2, 4), axis=0)
    assert not is_n_m(np.ones((6, 2)), (2, 4), axis=0)
    assert not is_n_m(np.ones((4, 2)), (2, 4), axis=None)


def _reference_top_n(scores, active, n, m, axis):
    """Group by group, in plain Python: the N largest active scores, ties to the lower index."""
    moved_scores = np.moveaxis(scores, axis, -1).copy()
    moved_active = np.moveaxis(active, axis, -1)
    keep = np.zeros(moved_scores.shape, bool)
    for index in np.ndindex(moved_scores.shape[:-1]):
        for start in range(0, moved_scores.shape[-1], m):
            candidates = [j for j in range(start, start + m) if moved_active[index][j]]
            candidates.sort(key=lambda j: (-moved_scores[index][j], j))
            for j in candidates[:n]:
                keep[index + (j,)] = True
    return np.moveaxis(keep, -1, axis)


@pytest.mark.parametrize("shape, axis, n_m", [((8, 6), 0, (2, 4)), ((3, 3, 8, 4), 2, (1, 4)), ((2, 8, 5), 1, (3, 8))])
def test_keep_top_n_m_matches_a_reference(shape, axis, n_m):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=shape).astype(float)  # many ties
    active = np.ones(shape, bool)
    kept = keep_top_n_m(scores, active, n_m, axis)
    assert np.array_equal(kept, _reference_top_n(scores, active, *n_m, axis))
    assert is_n_m(kept, n_m, axis)


def test_keep_top_n_m_only_keeps_active_weights():
    scores = np.array([[9.0, 1.0, 2.0, 3.0, 9.0, 9.0, 1.0, 0.0]])
    active = np.array([[0, 1, 1, 1, 1, 1, 1, 0]], bool)
    kept = keep_top_n_m(scores, active, (2, 4), axis=1)
    assert kept.astype(int).tolist() == [[0, 0, 1, 1, 1, 1, 0, 0]]
    assert np.array_equal(kept, _reference_top_n(scores, active, 2, 4, 1))


def test_keep_top_n_m_keeps_an_n_m_mask():
    (mask,) = sample_n_m_masks([(8, 4)], [0], (2, 4), seed=0)
    scores = np.random.default_rng(1).random((8, 4))
    assert np.array_equal(keep_top_n_m(scores, mask, (2, 4), axis=0), mask)


def test_keep_top_n_m_refuses_groups_short_of_n():
    active = np.array([[1, 0, 0, 0, 1, 1, 0, 0]], bool)
    with pytest.raises(ValueError, match=r"1 group\(s\) of 4 along axis 1 have fewer than 2 active"):
        keep_top_n_m(np.ones((1, 8)), active, (2, 4), axis=1)
