import hashlib

import keras
import numpy as np
import pytest

from keras_er import masks
from keras_er.layers import MaskedDense
from tests.helpers import masked_cnn
from tests.helpers import masked_weights
from tests.helpers import to_numpy


def mlp():
    return keras.Sequential(
        [
            keras.Input((20,)),
            MaskedDense(64, name="fc1"),
            MaskedDense(64, name="fc2"),
            MaskedDense(10, name="head"),
        ]
    )


def mask_digest(model):
    h = hashlib.sha256()
    for layer in masks.masked_layers(model):
        h.update(np.packbits(to_numpy(layer.mask).astype(bool)).tobytes())
    return h.hexdigest()


# The masks a seed gives inside a model, read back from the backend's variables:
# the same hash on TensorFlow, torch and JAX (the test runs under each).
GOLDEN_MLP_ERK_SEED7 = "c49317b603425c6db5e1f86cfacfce699b9dd8f73354ae186b700888a45005e0"


def test_masks_in_the_model_are_bit_identical_on_every_backend():
    model = mlp()
    masks.assign(model, density=0.2, scheme="erk", seed=7, method="exact")
    assert mask_digest(model) == GOLDEN_MLP_ERK_SEED7


@pytest.mark.parametrize("scheme", masks.SCHEMES)
def test_assign_meets_the_target_exactly_with_the_exact_method(scheme):
    model = mlp()
    densities = masks.assign(model, density=0.1, scheme=scheme, seed=0, method="exact")
    report = masks.summary(model, print_fn=None)
    assert report["global_density"] == pytest.approx(0.1, abs=1e-3)
    for row, density in zip(report["layers"], densities):
        assert row["nonzeros"] == round(density * row["size"])


def test_assign_keeps_named_layers_dense_and_zeroes_masked_kernel_entries():
    model = mlp()
    masks.assign(model, density=0.2, scheme="uniform", seed=1, dense_layers=("head",))
    report = masks.summary(model, print_fn=None)
    assert report["layers"][-1]["density"] == 1.0
    for kernel, mask in masked_weights(model).values():
        assert np.all(kernel[mask == 0] == 0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"density": 0}, ValueError, "`density`"),
        ({"density": "low"}, TypeError, "`density`"),
        ({"scheme": "snip"}, ValueError, "uniform, erk, balanced, pyramidal"),
        ({"dense_layers": ("fc9",)}, ValueError, r"fc9.*\['fc1', 'fc2', 'head'\]"),
        ({"method": "random"}, ValueError, "bernoulli, exact"),
        ({"seed": -1}, ValueError, "`seed`"),
    ],
)
def test_bad_arguments_leave_the_model_untouched(kwargs, error, match):
    model = mlp()
    masks.assign(model, density=0.3, seed=0)
    before = masked_weights(model)
    with pytest.raises(error, match=match):
        masks.assign(model, **{"density": 0.1, **kwargs})
    for name, (kernel, mask) in masked_weights(model).items():
        np.testing.assert_array_equal(kernel, before[name][0])
        np.testing.assert_array_equal(mask, before[name][1])


def test_models_without_masked_layers_or_unbuilt_are_refused():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no keras_er masked layers"):
        masks.summary(plain)
    unbuilt = keras.Sequential([MaskedDense(2)])
    with pytest.raises(ValueError, match="not built"):
        masks.assign(unbuilt)
    with pytest.raises(TypeError, match="keras.Model"):
        masks.summary("model")


def test_summary_prints_a_table_with_a_total(capsys):
    model = masked_cnn()
    report = masks.summary(model)
    printed = capsys.readouterr().out
    assert "total" in printed and "masked_dense" in printed
    assert len(report["layers"]) == 4
    assert report["nonzeros"] == sum(int(m.sum()) for _, m in masked_weights(model).values())


def test_summary_shows_its_table_once_in_a_notebook_or_repl(capsys):
    model = masked_cnn()
    report = masks.summary(model)
    printed = capsys.readouterr().out
    assert "\n" not in repr(report) and len(repr(report)) < 120  # what a cell ending in summary() echoes
    assert repr(report).startswith("MaskSummary(global_density=")
    assert str(report) == printed.rstrip("\n")  # the table, printed once by print_fn
    assert isinstance(report, dict) and report["size"] == sum(row["size"] for row in report["layers"])
