"""The Keras private names `keras_er.layers.in_place` relies on: these fail when Keras changes them."""

import inspect

import keras
import numpy as np
import pytest

from keras_er.layers import in_place
from tests.helpers import to_numpy


@pytest.mark.parametrize("cls, prop, stored", in_place.MASKABLE)
def test_each_maskable_class_reads_its_weight_through_a_property_over_the_stored_variable(cls, prop, stored):
    assert isinstance(inspect.getattr_static(cls, prop), property), f"{cls.__name__}.{prop} is no longer a property"
    layer = {
        keras.layers.Embedding: lambda: keras.layers.Embedding(7, 3),
        keras.layers.EinsumDense: lambda: keras.layers.EinsumDense("ab,bc->ac", output_shape=3),
    }.get(cls, lambda: cls(3) if cls is keras.layers.Dense else cls(3, 2))()
    shape = {
        keras.layers.Embedding: (2, 4),
        keras.layers.Conv1D: (1, 5, 2),
        keras.layers.Conv2D: (1, 5, 5, 2),
        keras.layers.Conv3D: (1, 5, 5, 5, 2),
    }.get(cls, (2, 4))
    layer.build(shape)
    assert isinstance(getattr(layer, stored), keras.Variable)
    assert layer._tracker.locked, "a built layer's state is locked (mask_in_place unlocks it)"


def test_masking_in_place_uses_the_tracker_and_the_sublayer_listing():
    outer = keras.layers.MultiHeadAttention(2, 4)
    x = np.ones((1, 3, 8), "float32")
    outer(x, x)
    children = outer._flatten_layers(include_self=False, recursive=False)
    assert {type(child).__name__ for child in children} >= {"EinsumDense"}
    query = outer._query_dense
    in_place.mask_in_place(query)
    assert query._tracker.locked, "locked again after the mask is added"
    assert any(w is query.mask for w in query.non_trainable_weights) and query.mask.dtype == "uint8"
    query.assign_mask(np.zeros(tuple(query.kernel_variable.shape)))
    assert not to_numpy(query.kernel).any() and not to_numpy(query._kernel).any()
