import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_er.masks import SCHEMES
from keras_er.masks import layer_densities

# ResNet20 (CIFAR) conv + dense kernel shapes, 1x1 projection shortcuts included.
RESNET20 = (
    [(3, 3, 3, 16)]
    + [(3, 3, 16, 16)] * 6
    + [(3, 3, 16, 32), (3, 3, 32, 32), (1, 1, 16, 32)]
    + [(3, 3, 32, 32)] * 4
    + [(3, 3, 32, 64), (3, 3, 64, 64), (1, 1, 32, 64)]
    + [(3, 3, 64, 64)] * 4
    + [(64, 10)]
)


def global_density(shapes, densities):
    sizes = np.array([math.prod(s) for s in shapes], dtype=float)
    return float((sizes * np.array(densities)).sum() / sizes.sum())


def test_uniform_is_the_same_everywhere():
    assert layer_densities([(4, 8), (8, 2)], 0.25, "uniform") == [0.25, 0.25]


def test_erk_matches_hand_computed_values():
    # raw = sum/prod: 12/32 and 10/16; eps = 24 / (12 + 10) = 12/11.
    got = layer_densities([(4, 8), (8, 2)], 0.5, "erk")
    assert got == pytest.approx([0.375 * 12 / 11, 0.625 * 12 / 11], abs=1e-12)


def test_erk_makes_a_tiny_first_layer_dense_and_still_meets_the_target():
    shapes = [(3, 3, 3, 16), (3, 3, 64, 64), (3, 3, 64, 64)]
    got = layer_densities(shapes, 0.5, "erk")
    assert got[0] == 1.0
    assert got[1] == got[2] == pytest.approx((0.5 * 74160 - 432) / 73728)
    assert global_density(shapes, got) == pytest.approx(0.5, abs=1e-12)


def test_balanced_gives_equal_counts_and_redistributes_the_deficit():
    # X = 105/3 = 35 would give the 25-weight layer 1.4 -> dense; X = 40 for the rest.
    got = layer_densities([(10, 10), (20, 20), (5, 5)], 0.2, "balanced")
    assert got == pytest.approx([0.4, 0.1, 1.0])


def test_pyramidal_is_a_geometric_sequence_meeting_the_target():
    shapes = [(10, 10)] * 4
    got = layer_densities(shapes, 0.3, "pyramidal")
    r = got[0]
    assert got == pytest.approx([r, r**2, r**3, r**4])
    assert global_density(shapes, got) == pytest.approx(0.3, abs=1e-9)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("density", [0.02, 0.05, 0.1, 0.5])
def test_every_scheme_meets_the_target_on_resnet20(scheme, density):
    got = layer_densities(RESNET20, density, scheme)
    assert all(0 < d <= 1 for d in got)
    assert global_density(RESNET20, got) == pytest.approx(density, abs=1e-9)


def test_erk_on_resnet20_gives_the_small_layers_more_density():
    got = layer_densities(RESNET20, 0.1, "erk")
    # Small layers get more: the stem and the head are denser than the 64x64 convs.
    assert got[0] > got[-2] and got[-1] > got[-2]


def test_dense_layers_first_and_last_are_kept_and_target_met():
    got = layer_densities(RESNET20, 0.1, "uniform", dense_layers=("first", "last"))
    assert got[0] == 1.0 and got[-1] == 1.0
    assert global_density(RESNET20, got) == pytest.approx(0.1, abs=1e-9)


def test_dense_layers_by_negative_index():
    got = layer_densities([(10, 10)] * 3, 0.5, "erk", dense_layers=(-2,))
    assert got[1] == 1.0


def test_infeasible_target_is_rejected():
    with pytest.raises(ValueError, match="infeasible"):
        layer_densities([(100, 100), (2, 2)], 0.01, "erk", dense_layers=("first",))


@pytest.mark.parametrize("density", [0, -0.1, 1.5, float("nan"), float("inf")])
def test_density_out_of_range_is_a_value_error(density):
    with pytest.raises(ValueError, match="`density` must be in \\(0, 1\\]"):
        layer_densities([(4, 4)], density, "erk")


@pytest.mark.parametrize("density", ["0.1", None, True, [0.1]])
def test_density_of_the_wrong_type_is_a_type_error(density):
    with pytest.raises(TypeError, match="`density` must be a number"):
        layer_densities([(4, 4)], density, "erk")


def test_unknown_scheme_lists_the_valid_ones():
    with pytest.raises(ValueError, match="uniform, erk, balanced, pyramidal"):
        layer_densities([(4, 4)], 0.1, "random")


@pytest.mark.parametrize("dense_layers", [("middle",), (5,), (True,)], ids=["name", "range", "bool"])
def test_bad_dense_layers_are_rejected(dense_layers):
    with pytest.raises(ValueError, match="dense_layers"):
        layer_densities([(4, 4), (4, 4)], 0.5, "erk", dense_layers=dense_layers)


@pytest.mark.parametrize("shapes", [[], [(0, 3)], [("a", 3)]])
def test_bad_shapes_are_rejected(shapes):
    with pytest.raises(ValueError, match="shape"):
        layer_densities(shapes, 0.5, "erk")


shape_lists = st.lists(
    st.lists(st.integers(1, 40), min_size=2, max_size=4).map(tuple),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(shapes=shape_lists, density=st.floats(0.01, 1.0), scheme=st.sampled_from(tuple(SCHEMES)))
def test_property_target_met_and_densities_valid(shapes, density, scheme):
    got = layer_densities(shapes, density, scheme)
    assert len(got) == len(shapes)
    assert all(0 < d <= 1 + 1e-12 for d in got)
    assert global_density(shapes, got) == pytest.approx(density, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    shapes=shape_lists.filter(lambda s: len(s) >= 2),
    density=st.floats(0.01, 1.0),
    scheme=st.sampled_from(tuple(SCHEMES)),
)
def test_property_dense_layers_honoured_or_rejected(shapes, density, scheme):
    sizes = [math.prod(s) for s in shapes]
    feasible = density * sum(sizes) > sizes[0] + sizes[-1] or len(shapes) == 2
    try:
        got = layer_densities(shapes, density, scheme, dense_layers=("first", "last"))
    except ValueError as error:
        assert "infeasible" in str(error)
        assert density * sum(sizes) <= sizes[0] + sizes[-1] + 1e-9
        return
    assert got[0] == 1.0 and got[-1] == 1.0
    if len(shapes) > 2:
        assert feasible
        assert global_density(shapes, got) == pytest.approx(density, abs=1e-6)
