import keras
import numpy as np
import pytest

from keras_er.layers import MaskedDense
from keras_er.layers import popup
from keras_er.masks import masked_layers
from tests.helpers import OPTIMIZERS
from tests.helpers import images
from tests.helpers import masked_cnn
from tests.helpers import to_numpy


def compiled_popup_cnn(optimizer):
    model = masked_cnn(popup=True, density=0.9)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_popup_fit_changes_only_scores(optimizer):
    model = compiled_popup_cnn(OPTIMIZERS[optimizer]())
    layers = masked_layers(model)
    kernels = [to_numpy(l.kernel) for l in layers]
    scores = [to_numpy(l.scores) for l in layers]
    x, y = images()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for layer, kernel, score in zip(layers, kernels, scores):
        np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)
        assert not np.array_equal(to_numpy(layer.scores), score)
        assert [w.name for w in layer.trainable_weights] == ["scores"]


def test_active_count_is_the_topk_count():
    model = masked_cnn(popup=True, popup_density=0.3)
    for layer in masked_layers(model):
        mask = to_numpy(layer.mask)
        active = layer.active_mask()
        assert active.sum() == popup.topk_count(mask, 0.3)
        assert not np.any(active & (mask == 0)), "popup only picks inside the ER mask"
        # The kept weights are the largest |scores| among the masked positions.
        magnitude = np.abs(to_numpy(layer.scores))
        assert magnitude[active].min() >= magnitude[(mask == 1) & ~active].max()


def test_gradient_reaches_scores_through_the_straight_through_estimator():
    layer = MaskedDense(5, density=0.8, seed=0, popup=True, popup_density=0.5)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    layer(x)
    # Finite difference is useless for a step function; check the STE value,
    # the identity in |scores| as in edge-popup: for a linear layer
    # d(sum(y)) / d(scores) = kernel * mask * sum_batch(x) * sign(scores).
    expected = to_numpy(layer.kernel) * to_numpy(layer.mask) * x.sum(0)[:, None] * np.sign(to_numpy(layer.scores))
    grad = _grad_of_sum(layer, x)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_popup_learns_a_task_with_frozen_random_weights():
    """Only the choice of weights is learned; a wide random net contains a good one."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 16)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((16,)),
            MaskedDense(512, activation="relu", density=0.5, seed=1, popup=True, popup_density=0.3),
            MaskedDense(2, density=1.0, seed=2, popup=True, popup_density=0.3),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = model.evaluate(x, y, verbose=0)[1]
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    after = model.evaluate(x, y, verbose=0)[1]
    assert before < 0.65 and after > 0.85, (before, after)


def _grad_of_sum(layer, x):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        kernel = keras.ops.convert_to_tensor(layer.kernel)
        mask = keras.ops.convert_to_tensor(layer.mask)

        def forward(scores):
            w = kernel * mask * popup.score_mask(scores, mask, layer.popup_density)
            return (x @ w).sum()

        return np.asarray(jax.grad(forward)(keras.ops.convert_to_tensor(layer.scores)))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y = keras.ops.sum(layer(x))
        return tape.gradient(y, layer.scores.value).numpy()
    import torch

    y = keras.ops.sum(layer(x))
    (grad,) = torch.autograd.grad(y, layer.scores.value)
    return grad.cpu().numpy()


def test_frozen_kernel_is_reproducible_from_the_seed():
    layer = MaskedDense(7, density=0.5, seed=42, popup=True)
    layer.build((None, 9))
    expected = popup.frozen_kernel((9, 7), fan_in=9, seed=42)
    np.testing.assert_array_equal(to_numpy(layer.kernel), expected)
    assert abs(expected.std() - np.sqrt(2 / 9)) < 0.1


def _numpy_score_mask(scores, mask, fraction):
    magnitude = np.where(mask > 0, np.abs(scores), -1.0).astype(np.float32).ravel()
    k = popup.topk_count(mask, fraction)
    largest_first = np.lexsort((np.arange(magnitude.size), -magnitude))  # ties: lower index first
    kept = np.zeros(magnitude.size, np.float32)
    kept[largest_first[:k]] = 1.0
    return kept.reshape(mask.shape)


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("shape", [(7,), (3, 3, 16, 32), (300, 10)])
def test_score_mask_is_exactly_the_top_k_of_a_sort(shape, fraction):
    rng = np.random.default_rng(sum(shape))
    scores = rng.normal(size=shape).astype(np.float32)
    scores.ravel()[:3] = [0.0, -0.0, 1e-40]  # zeros and a denormal
    mask = (rng.random(shape) < 0.6).astype(np.float32)
    mask.ravel()[0] = 1.0
    result = to_numpy(popup.score_mask(scores, mask, fraction))
    np.testing.assert_array_equal(result, _numpy_score_mask(scores, mask, fraction))
    assert result.sum() == popup.topk_count(mask, fraction)


@pytest.mark.parametrize(
    "fraction, expected", [(0.4, [1, 1, 0, 0, 0, 0]), (0.6, [1, 1, 1, 0, 0, 0]), (0.8, [1, 1, 1, 1, 0, 0])]
)
def test_score_mask_keeps_exactly_k_and_breaks_ties_by_position(fraction, expected):
    scores = np.array([3.0, 2.0, 2.0, -2.0, 1.0, 9.0], np.float32)
    mask = np.array([1, 1, 1, 1, 1, 0], np.float32)  # the 9.0 is outside the ER mask
    np.testing.assert_array_equal(to_numpy(popup.score_mask(scores, mask, fraction)), expected)


@pytest.mark.parametrize("fraction", [1e-6, 0.2, 1.0])
@pytest.mark.parametrize("scores_kind", ["distinct", "ties", "channel_structure", "zeros"])
def test_large_layer_score_mask_is_exactly_the_top_k_of_a_sort(scores_kind, fraction):
    """Layers of >= 65536 weights take the sampled-bracket paths; k = 1 and k = all kept included."""
    rng = np.random.default_rng(7)
    shape = (3, 3, 128, 64)
    scores = rng.uniform(-1, 1, shape).astype(np.float32)
    if scores_kind == "ties":
        scores = np.round(scores * 50) / 50
    elif scores_kind == "channel_structure":  # a strided sample would see only some channels
        scores = (scores * 1e-3 + np.arange(64) % 7).astype(np.float32)
    elif scores_kind == "zeros":
        scores[rng.random(shape) < 0.9] = 0.0
    mask = (rng.random(shape) < 0.5).astype(np.float32)
    result = to_numpy(popup.score_mask(scores, mask, fraction))
    np.testing.assert_array_equal(result, _numpy_score_mask(scores, mask, fraction))


def test_torch_export_of_a_popup_model_keeps_its_outputs():

    if keras.backend.backend() != "torch":
        pytest.skip("torch.export is torch's")
    import torch

    model = masked_cnn(popup=True)
    x = torch.tensor(images()[0])
    exported = torch.export.export(model, (x,), strict=False)
    np.testing.assert_array_equal(exported.module()(x).detach().cpu().numpy(), to_numpy(model(x)))
