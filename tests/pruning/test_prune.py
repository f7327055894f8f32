"""keras_er.pruning.prune: magnitude, random, SNIP, SynFlow and the open method registry."""

import keras
import numpy as np
import pytest

from keras_er import masks as masks_lib
from keras_er import pruning
from keras_er.data import ImageBatches
from keras_er.layers import MaskedDense
from keras_er.pruning import METHODS
from keras_er.pruning import prune
from keras_er.pruning import register_method
from keras_er.pruning import select
from keras_er.pruning import unregister_method
from tests.helpers import images
from tests.helpers import masked_cnn
from tests.helpers import masked_weights
from tests.helpers import to_numpy


def layer_masks(model):
    return [to_numpy(layer.mask).astype(bool) for layer in masks_lib.masked_layers(model)]


def copy_of(model, build):
    twin = build()
    twin.set_weights(model.get_weights())
    return twin


def mlp(seed=0, last=2, batch_norm=True, density=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((20,)), MaskedDense(100, activation="relu", seed=seed, density=density)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        MaskedDense(100, activation="relu", seed=seed + 1, density=density),
        MaskedDense(last, seed=seed + 2, density=density),
    ]
    return keras.Sequential(layers)


def test_magnitude_keeps_the_largest_active_weights_and_exact_counts():
    model = masked_cnn(seed=0)  # density 0.5
    before = masked_weights(model)
    size = sum(kernel.size for kernel, _ in before.values())
    densities = prune(model, "magnitude", 0.2)
    after = masked_weights(model)
    kept = sum(int(mask.sum()) for _, mask in after.values())
    assert kept == round(0.2 * size)
    assert densities == [mask.sum() / mask.size for _, mask in after.values()]
    kept_values, dropped_values = [], []
    for name, (kernel, mask) in after.items():
        old_kernel, old_mask = before[name]
        assert not (mask.astype(bool) & ~old_mask.astype(bool)).any()  # only active positions kept
        np.testing.assert_array_equal(kernel, old_kernel * mask)  # kept weights unchanged, pruned ones 0
        kept_values.append(np.abs(old_kernel[mask == 1]))
        dropped_values.append(np.abs(old_kernel[(old_mask == 1) & (mask == 0)]))
    assert np.concatenate(kept_values).min() >= np.concatenate(dropped_values).max()


def test_a_scheme_gives_per_layer_budgets_of_layer_densities():
    model = masked_cnn(seed=1, density=1.0)
    shapes = [tuple(layer.kernel.shape) for layer in masks_lib.masked_layers(model)]
    before = masked_weights(model)
    densities = prune(model, "magnitude", 0.3, scheme="erk")
    counts = [int(mask.sum()) for mask in layer_masks(model)]
    assert counts == select.layer_counts(shapes, 0.3, "erk")
    assert densities == [c / int(np.prod(s)) for c, s in zip(counts, shapes)]
    for name, (kernel, mask) in masked_weights(model).items():
        old = np.abs(before[name][0])
        assert np.abs(kernel[mask == 1]).min() >= old[mask == 0].max()  # each layer's own top


def test_pruning_a_sparse_model_makes_it_sparser_and_zeroes_optimizer_slots():
    model = masked_cnn(seed=2)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = images()
    model.train_on_batch(x, y)
    first = layer_masks(model)
    prune(model, "magnitude", 0.3)
    second = layer_masks(model)
    prune(model, "random", 0.1, scheme="uniform", seed=3)
    third = layer_masks(model)
    for a, b, c in zip(first, second, third):
        assert not (b & ~a).any() and not (c & ~b).any()
    for layer, mask in zip(masks_lib.masked_layers(model), third):
        slots = [v for v in model.optimizer.variables if v.name.startswith(layer.kernel.path.replace("/", "_"))]
        assert slots and all(np.all(to_numpy(slot)[~mask] == 0) for slot in slots)
    model.train_on_batch(x, y)
    for name, (kernel, mask) in masked_weights(model).items():
        assert np.all(kernel[mask == 0] == 0), name


def test_random_is_seeded_and_draws_an_er_mask_per_layer():
    a, b, c = masked_cnn(seed=0, density=1.0), masked_cnn(seed=5, density=1.0), masked_cnn(seed=0, density=1.0)
    prune(a, "random", 0.25, scheme="erk", seed=7)
    prune(b, "random", 0.25, scheme="erk", seed=7)  # other weights: the same masks
    prune(c, "random", 0.25, scheme="erk", seed=8)
    for x, y in zip(layer_masks(a), layer_masks(b)):
        np.testing.assert_array_equal(x, y)
    assert any((x != z).any() for x, z in zip(layer_masks(a), layer_masks(c)))
    # The masks are the top of seeded uniform scores: the same on every backend.
    shapes = [m.shape for m in layer_masks(a)]
    children = np.random.SeedSequence(7).spawn(len(shapes))
    scores = [np.random.Generator(np.random.PCG64(child)).random(shape) for child, shape in zip(children, shapes)]
    expected = select.select_per_layer(
        scores, [np.ones(s, bool) for s in shapes], select.layer_counts(shapes, 0.25, "erk")
    )
    for x, e in zip(layer_masks(a), expected):
        np.testing.assert_array_equal(x, e)


def one_layer_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), MaskedDense(5, use_bias=False, seed=seed)])


def test_snip_matches_the_closed_form_gradient_of_a_linear_softmax_model():
    model = one_layer_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 5, 16)
    w = to_numpy(model.layers[0].kernel).astype(np.float64)
    logits = x.astype(np.float64) @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gradient = x.T.astype(np.float64) @ (p - np.eye(5)[y]) / len(y)  # d mean CE / dW
    expected = select.keep_top(np.abs(gradient * w), np.ones((6, 5), bool), 9)
    prune(model, "snip", 0.3, data=(x, y))
    np.testing.assert_array_equal(layer_masks(model)[0], expected)


def test_snip_takes_the_first_batch_of_a_py_dataset():
    pixels, labels = images(n=24)
    pixels = np.clip(pixels * 40 + 128, 0, 255).astype(np.uint8)
    data = ImageBatches(pixels, labels, (128,) * 3, (64,) * 3, batch_size=8)
    model = masked_cnn(seed=3)
    twin = copy_of(model, lambda: masked_cnn(seed=3))
    prune(model, "snip", 0.2, data=data)
    prune(twin, "snip", 0.2, data=data[0])
    for a, b in zip(layer_masks(model), layer_masks(twin)):
        np.testing.assert_array_equal(a, b)


def test_synflow_avoids_layer_collapse_where_magnitude_does_not():
    density = 0.005  # 61 of 12200 weights
    magnitude, synflow = mlp(), mlp()
    prune(magnitude, "magnitude", density)
    prune(synflow, "synflow", density, iterations=20)
    for model, collapsed in ((magnitude, True), (synflow, False)):
        masks = layer_masks(model)
        assert sum(int(m.sum()) for m in masks) == round(density * 12200)
        assert all(m.sum() >= 1 for m in masks)  # never a layer entirely
        paths = masks[0].astype(int) @ masks[1].astype(int) @ masks[2].astype(int)  # input -> output paths
        reachable = (paths.sum(axis=0) > 0).all()
        middle = int(masks[1].sum())
        if collapsed:
            assert middle == 1  # magnitude keeps only the middle layer's one reserved weight
        else:
            assert reachable and middle > 1  # every output still has a path from the input


def test_synflow_restores_every_weight_and_keeps_exact_counts_per_scheme():
    model = mlp(batch_norm=True, last=3)
    rng = np.random.default_rng(0)
    bn = model.layers[1]
    for weight in bn.weights:  # signed BatchNorm values, so abs() would show if not restored
        weight.assign(rng.normal(size=tuple(weight.shape)).astype("float32") * (weight.name != "moving_variance") + 1.5)
    before = {w.path: to_numpy(w) for w in model.weights}
    densities = prune(model, "synflow", 0.05, scheme="erk", iterations=10)
    shapes = [tuple(layer.kernel.shape) for layer in masks_lib.masked_layers(model)]
    counts = [int(m.sum()) for m in layer_masks(model)]
    assert counts == select.layer_counts(shapes, 0.05, "erk")
    assert densities == [c / int(np.prod(s)) for c, s in zip(counts, shapes)]
    masked = {layer.kernel.path: layer for layer in masks_lib.masked_layers(model)}
    for weight in model.weights:
        value = to_numpy(weight)
        if weight.path in masked:
            np.testing.assert_array_equal(value, before[weight.path] * to_numpy(masked[weight.path].mask))
        elif weight.name != "mask":
            np.testing.assert_array_equal(value, before[weight.path], err_msg=weight.path)


def test_synflow_from_a_sparse_start_keeps_only_active_positions():
    model = mlp(batch_norm=False, density=0.3)
    first = layer_masks(model)
    prune(model, "synflow", 0.05, iterations=5)
    kept = layer_masks(model)
    assert sum(int(m.sum()) for m in kept) == round(0.05 * 12200)
    for a, b in zip(first, kept):
        assert not (b & ~a).any()


def test_a_registered_method_is_used_and_listed():
    register_method("smallest_first", lambda context: [-np.abs(k) for k in context.kernels()])
    try:
        assert "smallest_first" in pruning.METHODS and "smallest_first" in METHODS  # one live registry
        model = one_layer_model()
        kernel = to_numpy(model.layers[0].kernel)
        prune(model, "smallest_first", 0.2)
        mask = layer_masks(model)[0]
        assert np.abs(kernel[mask]).max() <= np.abs(kernel[~mask]).min()
    finally:
        unregister_method("smallest_first")
    with pytest.raises(ValueError, match="exists already"):
        register_method("magnitude", lambda context: None)
    with pytest.raises(ValueError, match="'magnitude' is built in and cannot be unregistered"):
        unregister_method("magnitude")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(method="obs"),
            ValueError,
            "Unknown pruning method 'obs' for `method`; expected one of: magnitude, random, snip, synflow",
        ),
        (dict(method="snip"), ValueError, "'snip' needs data"),
        (dict(density=0.0), ValueError, r"`density` must be in \(0, 1\]"),
        (dict(density=1.5), ValueError, r"`density` must be in \(0, 1\]"),
        (dict(density=True), TypeError, "`density` must be a number"),
        (dict(density=0.9), ValueError, "above the model's current density 0.5"),
        (dict(scheme="nope"), ValueError, "Unknown scheme 'nope' for `scheme`"),
        (dict(iterations=0), ValueError, "`iterations` must be a positive integer"),
        (dict(density=float("nan")), ValueError, r"`density` must be in \(0, 1\]"),
        (dict(density=float("inf")), ValueError, r"`density` must be in \(0, 1\]"),
        (dict(seed=1.5), ValueError, "`seed` must be a non-negative integer"),
        (dict(method="snip", data=[1, 2, 3, 4]), TypeError, r"`data` must be an \(x, y\) tuple"),
    ],
)
def test_clear_errors(kwargs, error, message):
    model = masked_cnn(seed=0)
    before = masked_weights(model)
    arguments = dict(method="magnitude", density=0.2) | kwargs
    with pytest.raises(error, match=message):
        prune(model, **arguments)
    for name, (kernel, mask) in masked_weights(model).items():  # nothing changed
        np.testing.assert_array_equal(kernel, before[name][0])
        np.testing.assert_array_equal(mask, before[name][1])


def test_popup_layers_and_models_without_masked_layers_are_refused():
    with pytest.raises(ValueError, match="Cannot prune popup layers"):
        prune(masked_cnn(popup=True), "magnitude", 0.1)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no keras_er masked layers"):
        prune(plain, "magnitude", 0.1)
    with pytest.raises(TypeError, match="must be a keras.Model"):
        prune("model", "magnitude", 0.1)


# -- non-finite scores: refused, naming the layer and the method, before any mask changes ----------------------


def named_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6,)),
            MaskedDense(8, activation="relu", seed=seed, name="hidden"),
            MaskedDense(5, seed=seed + 1, name="logits"),
        ]
    )


def assert_unchanged(model, before):
    for name, (kernel, mask) in masked_weights(model).items():
        np.testing.assert_array_equal(mask, before[name][1], err_msg=name)
        np.testing.assert_array_equal(kernel, before[name][0], err_msg=name)


def test_snip_with_a_nan_in_its_batch_is_refused_and_no_mask_changes():
    model = named_mlp()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype("float32"), rng.integers(0, 5, 16)
    x[3, 2] = np.nan
    before = masked_weights(model)
    with pytest.raises(
        ValueError,
        match=r"^SNIP scores of layer '(hidden|logits)' contain \d+ non-finite values \(NaN/inf\); check the data",
    ):
        prune(model, "snip", 0.3, data=(x, y))
    assert_unchanged(model, before)


def test_magnitude_pruning_of_a_nan_kernel_is_refused_and_no_mask_changes():
    model = named_mlp()
    kernel = to_numpy(model.layers[1].kernel)
    kernel[0, 0], kernel[2, 3] = np.nan, np.inf
    model.layers[1].kernel.assign(kernel)
    before = masked_weights(model)
    with pytest.raises(ValueError, match=r"^Magnitude scores \(\|w\|\) of layer 'logits' contain 2 non-finite values"):
        prune(model, "magnitude", 0.5)
    assert_unchanged(model, before)


def test_imp_refuses_a_round_that_trained_to_nan():
    model = named_mlp()

    def diverging_fit(model, train, round_index):
        model.layers[0].kernel.assign(np.full((6, 8), np.nan, "float32"))

    with pytest.raises(ValueError, match=r"^Magnitude scores \(\|w\|\) of layer 'hidden' contain 48 non-finite"):
        pruning.imp(model, None, rounds=1, fit_fn=diverging_fit)
    assert all(mask.all() for _, mask in masked_weights(model).values())


def test_a_registered_method_returning_nan_is_refused_naming_it():
    def half_nan(context):
        scores = [np.abs(k) for k in context.kernels()]
        scores[0][0, :4] = np.nan
        return scores

    register_method("half_nan", half_nan)
    try:
        model = named_mlp()
        before = masked_weights(model)
        with pytest.raises(ValueError, match=r"^'half_nan' pruning scores of layer 'hidden' contain 4 non-finite"):
            prune(model, "half_nan", 0.5, scheme="uniform")
        assert_unchanged(model, before)
    finally:
        unregister_method("half_nan")


def test_synflow_overflow_is_a_value_error_and_every_weight_is_restored():
    model = mlp(batch_norm=False)
    for layer in masks_lib.masked_layers(model):
        layer.kernel.assign(to_numpy(layer.kernel) * 1e15)  # the flow through three layers overflows float32
    before = [to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError, match=r"^SynFlow scores of layer '\w+' contain \d+ non-finite values.*overflowed"):
        prune(model, "synflow", 0.1, iterations=3)
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), value, err_msg=weight.path)


def test_a_method_registered_as_needing_data_is_refused_without_it():
    calls = []
    register_method("needs_batch", lambda context: calls.append(1), needs_data=True)
    try:
        with pytest.raises(ValueError, match=r"prune: pruning method 'needs_batch' needs data: pass `data="):
            prune(named_mlp(), "needs_batch", 0.5)
        assert not calls  # refused before the method ran
    finally:
        unregister_method("needs_batch")
    with pytest.raises(TypeError, match="`needs_data` must be True or False"):
        register_method("bad_flag", lambda context: None, needs_data="yes")
    assert "bad_flag" not in pruning.METHODS
