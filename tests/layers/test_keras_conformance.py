"""The masked layers pass Keras' own layer test harness in every mode, and compose like Keras layers."""

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_er.layers import MaskedConv1D
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedConv2DTranspose
from keras_er.layers import MaskedConv3D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D
from keras_er.layers import MaskedEinsumDense
from keras_er.layers import MaskedSeparableConv2D

CASES = [
    (MaskedDense, dict(units=4), (2, 3), (2, 4)),
    (MaskedDense, dict(units=4), (2, 5, 3), (2, 5, 4)),
    (MaskedConv2D, dict(filters=4, kernel_size=3), (2, 5, 5, 3), (2, 3, 3, 4)),
    (MaskedConv2D, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 5, 5, 3), (2, 3, 3, 4)),
    (MaskedConv2D, dict(filters=4, kernel_size=3, dilation_rate=2), (2, 7, 7, 2), (2, 3, 3, 4)),
    (MaskedConv2D, dict(filters=4, kernel_size=1, groups=2), (2, 4, 4, 2), (2, 4, 4, 4)),
    (MaskedConv1D, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 9, 3), (2, 5, 4)),
    (MaskedConv3D, dict(filters=4, kernel_size=2), (2, 4, 4, 4, 2), (2, 3, 3, 3, 4)),
    (MaskedConv2DTranspose, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 4, 4, 3), (2, 8, 8, 4)),
    (MaskedDepthwiseConv2D, dict(kernel_size=3), (2, 5, 5, 3), (2, 3, 3, 3)),
    (MaskedDepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2, strides=2), (2, 6, 6, 3), (2, 2, 2, 6)),
    (MaskedSeparableConv2D, dict(filters=4, kernel_size=3, depth_multiplier=2), (2, 5, 5, 3), (2, 3, 3, 4)),
    (MaskedEinsumDense, dict(equation="ab,bc->ac", output_shape=4, bias_axes="c"), (2, 3), (2, 4)),
    (
        MaskedEinsumDense,
        dict(equation="abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de"),
        (2, 5, 3),
        (2, 5, 2, 4),
    ),
]


def case_id(case):
    cls, kwargs, *_ = case
    return cls.__name__ + "-" + "-".join(f"{k}{v}" for k, v in kwargs.items())


@pytest.mark.parametrize("popup", [False, True], ids=["masked", "popup"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_keras_layer_harness(case, popup):
    cls, kwargs, input_shape, output_shape = case
    harness = testing.TestCase("run_layer_test")
    extra = 1 if cls is MaskedSeparableConv2D else 0  # its dense depthwise kernel
    harness.run_layer_test(
        cls,
        {**kwargs, "density": 0.5, "seed": 0, "popup": popup},
        input_shape=input_shape,
        expected_output_shape=output_shape,
        expected_num_trainable_weights=1 if popup else 2 + extra,  # scores | kernel + bias
        expected_num_non_trainable_weights=3 + extra if popup else 1,  # + kernel, bias | mask
        expected_num_losses=0,
        supports_masking=cls is MaskedDense,
    )


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_output_shape_is_known_symbolically_in_either_layout(data_format):
    layer = MaskedConv2D(6, 3, strides=2, padding="same", data_format=data_format, density=0.5, seed=0)
    shape = (None, 3, 9, 9) if data_format == "channels_first" else (None, 9, 9, 3)
    expected = (None, 6, 5, 5) if data_format == "channels_first" else (None, 5, 5, 6)
    assert layer.compute_output_shape(shape) == expected
    assert tuple(layer(keras.Input(shape[1:])).shape) == expected


def test_time_distributed_masked_conv():
    inputs = keras.Input((4, 8, 8, 3))
    outputs = keras.layers.TimeDistributed(MaskedConv2D(5, 3, density=0.5, seed=0))(inputs)
    assert tuple(outputs.shape) == (None, 4, 6, 6, 5)
    x = np.random.default_rng(0).normal(size=(2, 4, 8, 8, 3)).astype("float32")
    assert tuple(keras.Model(inputs, outputs)(x).shape) == (2, 4, 6, 6, 5)


def test_masked_dense_passes_an_incoming_keras_mask_on():
    embedding = keras.layers.Embedding(10, 4, mask_zero=True)
    dense = MaskedDense(3, density=0.5, seed=0)
    inputs = keras.Input((5,), dtype="int32")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(dense(embedding(inputs))))
    tokens = np.array([[1, 2, 0, 0, 0]])
    per_position = keras.ops.convert_to_numpy(dense(embedding(tokens)))
    # With the mask passed on, the padded positions are left out of the average.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(tokens)), per_position[:, :2].mean(axis=1), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_symbolic_output_dtype_follows_the_policy(policy):
    for layer in (
        MaskedConv2D(4, 3, density=0.5, seed=0, dtype=policy),
        MaskedDepthwiseConv2D(3, density=0.5, seed=0, dtype=policy),
        MaskedSeparableConv2D(4, 3, density=0.5, seed=0, dtype=policy),
    ):
        spec = layer.compute_output_spec(keras.KerasTensor((1, 6, 6, 3)))
        assert spec.dtype == layer.compute_dtype


def test_the_convolutions_of_each_rank_are_siblings():
    from keras_er.layers.masked_conv import MaskedConv

    for first, second in [(MaskedConv1D, MaskedConv2D), (MaskedConv3D, MaskedConv2D), (MaskedConv1D, MaskedConv3D)]:
        assert not issubclass(first, second) and not issubclass(second, first)
    assert {MaskedConv1D.rank, MaskedConv2D.rank, MaskedConv3D.rank} == {1, 2, 3}
    assert all(issubclass(cls, MaskedConv) for cls in (MaskedConv1D, MaskedConv2D, MaskedConv3D))
