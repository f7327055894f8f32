import hashlib
import random

import numpy as np
import pytest

from keras_er.masks import sample_masks

SHAPES = [(3, 3, 3, 16), (3, 3, 16, 32), (64, 10)]
DENSITIES = [0.5, 0.1, 0.3]


def digest(masks):
    h = hashlib.sha256()
    for mask in masks:
        h.update(np.packbits(mask.astype(bool)).tobytes())
    return h.hexdigest()


def test_exact_method_keeps_exactly_round_p_n():
    masks = sample_masks(SHAPES, DENSITIES, seed=3, method="exact")
    for mask, shape, p in zip(masks, SHAPES, DENSITIES):
        assert mask.shape == shape and mask.dtype == bool
        assert mask.sum() == round(p * mask.size)


def test_bernoulli_density_is_close_to_p():
    (mask,) = sample_masks([(200, 500)], [0.1], seed=0)
    assert abs(mask.mean() - 0.1) < 0.005


def test_same_seed_same_masks_different_seed_different_masks():
    for method in ("bernoulli", "exact"):
        a = sample_masks(SHAPES, DENSITIES, seed=11, method=method)
        b = sample_masks(SHAPES, DENSITIES, seed=11, method=method)
        c = sample_masks(SHAPES, DENSITIES, seed=12, method=method)
        assert digest(a) == digest(b)
        assert digest(a) != digest(c)


GOLDEN_EXACT_SEED0 = "0564a1419ccc067bb14f49eacd5571ebadb7e885479632b2312e96befbc9826b"


def test_golden_masks_are_stable_across_machines_and_versions():
    # If this changes, every published zoo mask would change with it.
    masks = sample_masks(SHAPES, DENSITIES, seed=0, method="exact")
    assert digest(masks) == GOLDEN_EXACT_SEED0


def test_a_layer_mask_does_not_depend_on_later_layers():
    a = sample_masks(SHAPES, DENSITIES, seed=5)
    b = sample_masks(SHAPES[:1], DENSITIES[:1], seed=5)
    np.testing.assert_array_equal(a[0], b[0])


def test_sampling_leaves_the_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    np_state, py_state = np.random.get_state(), random.getstate()
    sample_masks(SHAPES, DENSITIES, seed=0)
    sample_masks(SHAPES, DENSITIES, seed=0, method="exact", repair_flow=True)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]


def test_repair_flow_leaves_no_unit_disconnected():
    shapes = [(3, 3, 32, 64), (128, 10)]
    broken = sample_masks(shapes, [0.002, 0.01], seed=0, method="exact")
    assert any((~m.reshape(-1, m.shape[-1]).any(axis=0)).any() for m in broken)
    repaired = sample_masks(shapes, [0.002, 0.01], seed=0, method="exact", repair_flow=True)
    for before, mask in zip(broken, repaired):
        units = mask.reshape(-1, mask.shape[-2], mask.shape[-1])
        assert units.any(axis=(0, 1)).all(), "an output unit has no input"
        assert units.any(axis=(0, 2)).all(), "an input unit has no output"
        assert (mask | before).sum() == mask.sum(), "repair only adds weights"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "topk"}, "bernoulli, exact"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"densities": [0.5]}, "3 entries"),
        ({"densities": [0.5, 1.5, 0.1]}, r"\[0, 1\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = {"shapes": SHAPES, "densities": DENSITIES, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_masks(**args)
