"""keras_er.pruning.select: scores and budgets -> masks, in numpy."""

import numpy as np
import pytest

from keras_er.masks import layer_densities
from keras_er.pruning import select

SHAPES = [(3, 3, 3, 8), (8, 16), (16, 4)]


def random_scores(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


def all_active(shapes=SHAPES):
    return [np.ones(shape, bool) for shape in shapes]


@pytest.mark.parametrize("count", [3, 10, 100, 300, 344])
def test_global_selection_keeps_exactly_count_and_the_best_scores(count):
    scores = random_scores()
    masks = select.select_global(scores, all_active(), count)
    assert sum(int(m.sum()) for m in masks) == count
    assert all(m.sum() >= 1 for m in masks)
    # Apart from each layer's reserved best weight, the kept ones are the global top.
    reserved = [np.argmax(s.ravel()) for s in scores]
    rest_kept, rest_dropped = [], []
    for s, m, r in zip(scores, masks, reserved):
        flat_s, flat_m = s.ravel(), m.ravel().copy()
        flat_m[r] = False
        unreserved = np.ones(flat_s.size, bool)
        unreserved[r] = False
        rest_kept.append(flat_s[flat_m])
        rest_dropped.append(flat_s[unreserved & ~m.ravel()])
    kept, dropped = np.concatenate(rest_kept), np.concatenate(rest_dropped)
    if kept.size and dropped.size:
        assert kept.min() >= dropped.max()


def test_every_layer_keeps_at_least_one_weight_even_with_the_lowest_scores():
    scores = random_scores()
    scores[1] = scores[1] - 100.0  # layer 1 would lose everything in a plain global ranking
    masks = select.select_global(scores, all_active(), 20)
    counts = [int(m.sum()) for m in masks]
    assert counts[1] == 1 and sum(counts) == 20
    assert masks[1].ravel()[np.argmax(scores[1])]
    # Fewer weights than layers: each layer still keeps one.
    assert [int(m.sum()) for m in select.select_global(scores, all_active(), 1)] == [1, 1, 1]


def test_per_layer_selection_keeps_each_layer_count_and_its_top_scores():
    scores = random_scores(1)
    counts = [50, 7, 1]
    masks = select.select_per_layer(scores, all_active(), counts)
    assert [int(m.sum()) for m in masks] == counts
    for s, m in zip(scores, masks):
        assert s[m].min() > s[~m].max()


def test_global_and_per_layer_budgets_differ_as_they_should():
    scores = random_scores(2)
    sizes = [int(np.prod(s)) for s in SHAPES]
    count = select.global_count(sizes, 0.3)
    assert count == round(0.3 * sum(sizes))
    counts = select.layer_counts(SHAPES, 0.3, "erk")
    expected = [max(1, round(d * n)) for d, n in zip(layer_densities(SHAPES, 0.3, "erk"), sizes)]
    assert counts == expected
    assert select.layer_counts(SHAPES, 0.3, "uniform") == [round(0.3 * n) for n in sizes]
    per_layer = select.select_per_layer(scores, all_active(), counts)
    assert [int(m.sum()) for m in per_layer] == counts
    assert sum(int(m.sum()) for m in select.select_global(scores, all_active(), count)) == count


def test_layer_counts_are_capped_at_the_active_weights():
    assert select.layer_counts(SHAPES, 0.5, "uniform", active_counts=[10, 100, 64]) == [10, 64, 32]


def test_ties_go_to_the_lower_flat_index_and_then_to_the_earlier_layer():
    scores = [np.zeros((3, 4)), np.zeros((5,))]
    masks = select.select_global(scores, [np.ones((3, 4), bool), np.ones(5, bool)], 6)
    # One reserved per layer (index 0 each), then the rest in layer order, lower flat index first.
    assert masks[0].ravel().tolist() == [True] * 5 + [False] * 7
    assert masks[1].tolist() == [True, False, False, False, False]
    keep = select.keep_top(np.array([1.0, 2.0, 2.0, 1.0, 2.0]), np.ones(5, bool), 2)
    assert keep.tolist() == [False, True, True, False, False]
    again = select.keep_top(np.array([1.0, 2.0, 2.0, 1.0, 2.0]), np.ones(5, bool), 2)
    np.testing.assert_array_equal(keep, again)


def test_only_active_positions_are_kept():
    scores = random_scores(3)
    rng = np.random.default_rng(4)
    active = [rng.random(shape) < 0.4 for shape in SHAPES]
    for masks in (
        select.select_global(scores, active, 60),
        select.select_per_layer(scores, active, [20, 10, 5]),
    ):
        for m, a in zip(masks, active):
            assert not (m & ~a).any()
    # High scores at inactive positions are ignored.
    keep = select.keep_top(np.array([9.0, 1.0, 8.0, 2.0]), np.array([False, True, False, True]), 1)
    assert keep.tolist() == [False, False, False, True]


def test_nan_scores_rank_last():
    keep = select.keep_top(np.array([np.nan, 0.1, -5.0]), np.ones(3, bool), 2)
    assert keep.tolist() == [False, True, True]


def test_asking_for_more_weights_than_are_active_is_refused():
    active = [np.array([True, False, False]), np.array([True, True])]
    with pytest.raises(ValueError, match="only 3 are active"):
        select.select_global([np.zeros(3), np.zeros(2)], active, 4)
    with pytest.raises(ValueError, match="only 1 are active"):
        select.select_per_layer([np.zeros(3), np.zeros(2)], active, [2, 1])
    with pytest.raises(ValueError, match="do not match"):
        select.keep_top(np.zeros(3), np.ones(4, bool), 1)
    with pytest.raises(ValueError, match="non-negative integer"):
        select.keep_top(np.zeros(3), np.ones(3, bool), 1.5)
