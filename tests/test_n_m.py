"""N:M structured sparsity end to end: sparsify(n_m=), prune(n_m=), DST and GradualPruning on N:M models."""

import hashlib
import warnings

import keras
import numpy as np
import pytest

import keras_er
from keras_er import masks
from keras_er.dst import updates
from keras_er.layers import MaskedConv2DTranspose
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D
from keras_er.layers import MaskedEinsumDense
from keras_er.layers import MaskedSeparableConv2D
from keras_er.masks.n_m import group_counts
from keras_er.pruning import GradualPruning
from keras_er.pruning import prune
from tests.helpers import to_numpy


def cnn():
    """Conv (3 input channels: not a multiple of 4) -> conv -> depthwise -> dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs)


def sparsify_quietly(model, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sparse = keras_er.sparsify(model, **kwargs)
    messages = [str(w.message) for w in caught if "sparsify leaves" in str(w.message)]
    return sparse, messages


def layer_by_name(model, name):
    return next(layer for layer in masks.masked_layers(model) if layer.name == name)


def test_functional_cnn_clone_path():
    model = cnn()
    sparse, messages = sparsify_quietly(model, n_m=(2, 4), seed=0)
    assert sparse is not model
    conv, logits = layer_by_name(sparse, "conv"), layer_by_name(sparse, "logits")
    assert np.all(group_counts(conv.active_mask(), 4, axis=2) == 2)  # (3, 3, in, out): in channels
    assert np.all(group_counts(logits.active_mask(), 4, axis=0) == 2)  # (in, out): inputs
    assert (conv.n_m, logits.n_m) == ((2, 4), (2, 4))
    for name in ("stem", "depthwise"):
        assert layer_by_name(sparse, name).active_mask().all() and layer_by_name(sparse, name).n_m is None
    (message,) = messages
    assert "stem (MaskedConv2D: kernel, reduction axis 2 of (3, 3, 3, 8) is not a multiple of 4)" in message
    assert "depthwise (MaskedDepthwiseConv2D: kernel, no reduction axis for 2:4)" in message
    assert "conv (" not in message.replace("depthwise", "")
    rows = {row["name"]: row for row in masks.summary(sparse, print_fn=None)["layers"]}
    assert rows["stem"]["density"] == 1.0 and rows["stem"]["masked"] and rows["stem"]["n_m"] is None
    assert rows["conv"]["density"] == 0.5 and rows["conv"]["n_m"] == (2, 4)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    # The masked weights are zero in the stored kernel too: the copy computes with kernel * mask.
    assert np.all(to_numpy(conv.kernel)[~conv.active_mask()] == 0)
    assert sparse(x).shape == (2, 4)


def test_masks_equal_the_numpy_sampler_and_a_fixed_checksum():
    """Identical masks on every backend: they are the numpy function's, whose bytes are fixed."""
    sparse, _ = sparsify_quietly(cnn(), n_m=(2, 4), seed=5)
    layers = masks.masked_layers(sparse)
    shapes = [tuple(layer.kernel_variable.shape) for layer in layers]
    axes = [masks.reduction_axis(layer) for layer in layers]
    expected = masks.sample_n_m_masks(shapes, axes, (2, 4), seed=5)
    actual = [layer.active_mask() for layer in layers]
    assert all(np.array_equal(a, e) for a, e in zip(actual, expected))
    digest = hashlib.sha256(b"".join(np.packbits(m).tobytes() for m in actual)).hexdigest()
    assert digest[:16] == CNN_SEED_5_DIGEST
    again, _ = sparsify_quietly(cnn(), n_m=(2, 4), seed=5)
    assert all(np.array_equal(a, layer.active_mask()) for a, layer in zip(actual, masks.masked_layers(again)))


CNN_SEED_5_DIGEST = "ddc4cf88b3c32cd8"


def test_multi_head_attention_in_place_path():
    inputs = keras.Input((6, 16))
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")
    outputs = keras.layers.Dense(4, name="head")(attention(inputs, inputs))
    model = keras.Model(inputs, outputs)
    sparse, messages = sparsify_quietly(model, n_m=(2, 4), seed=1)
    assert not messages  # every kernel groups: hidden 16, head_dim 8
    by_name = {layer.name: layer for layer in masks.masked_layers(sparse)}
    query, output = by_name["query"], by_name["attention_output"]
    assert type(query).__name__ == "InPlaceMaskedEinsumDense"
    assert masks.reduction_axis(query) == 0 and masks.reduction_axis(output) == 1
    assert np.all(group_counts(query.active_mask(), 4, axis=0) == 2)  # (hidden, heads, head_dim)
    assert np.all(group_counts(output.active_mask(), 4, axis=1) == 2)  # (heads, head_dim, hidden)
    assert all(layer.n_m == (2, 4) for layer in by_name.values())
    assert masks.summary(sparse, print_fn=None)["global_density"] == pytest.approx(0.5, abs=0.02)  # biases-free


def test_subclassed_model_in_place_dense():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    model = Net()
    model(np.ones((1, 12), "float32"))
    sparse, messages = sparsify_quietly(model, n_m=(1, 4), seed=0)
    assert sparse is model and not messages
    assert all(np.all(group_counts(layer.active_mask(), 4, axis=0) == 1) for layer in masks.masked_layers(model))


def test_embedding_is_left_dense_and_named():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="embed")(inputs)
    outputs = keras.layers.Dense(4, name="proj")(x)
    sparse, (message,) = sparsify_quietly(keras.Model(inputs, outputs), n_m=(2, 4))
    assert "embed (Embedding: embeddings, no reduction axis for 2:4)" in message  # the Keras class, not the twin
    assert layer_by_name(sparse, "embed").active_mask().all()
    assert is_two_four(layer_by_name(sparse, "proj"), axis=0)


def is_two_four(layer, axis):
    return masks.is_n_m(layer.active_mask(), (2, 4), axis)


@pytest.mark.parametrize(
    "layer, input_shape, axis",
    [
        (MaskedDense(4), (2, 8), 0),
        (keras.layers.Conv1D(4, 3), (1, 6, 8), 1),
        (MaskedConv2DTranspose(4, 3), (1, 5, 5, 8), 3),  # (kh, kw, filters, in)
        (MaskedSeparableConv2D(4, 3), (1, 6, 6, 8), 2),  # the pointwise kernel (1, 1, in, filters)
        (MaskedEinsumDense("abc,cd->abd", (3, 4)), (1, 3, 8), 0),
        (MaskedDepthwiseConv2D(3), (1, 6, 6, 8), None),
    ],
)
def test_reduction_axis_per_layer(layer, input_shape, axis):
    layer.build(input_shape)
    if not keras_er.masks.model.is_masked(layer):
        keras_er.layers.in_place.mask_in_place(layer)
    assert masks.reduction_axis(layer) == axis


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_m=(2, 4), density=0.3), ValueError, r"`density`=0.3 conflicts with `n_m`=\(2, 4\)"),
        (dict(n_m=(2, 4), scheme="erk"), ValueError, "`scheme`='erk' does not apply with `n_m`"),
        (dict(n_m=(2, 4), method="bernoulli"), ValueError, "`method`='bernoulli' would break the 2:4"),
        (dict(n_m=(2, 4), method="exactly"), ValueError, "Unknown `method` 'exactly'"),
        (dict(n_m=(2, 4), repair_flow=True), ValueError, "`repair_flow`=True would break"),
        (dict(n_m=(2, 4), popup=True), ValueError, "`popup=True`"),
        (dict(n_m=(2.0, 4)), TypeError, "`n_m`"),
        (dict(n_m=(True, 4)), TypeError, "`n_m`"),
        (dict(n_m=(-2, 4)), ValueError, "`n_m`"),
        (dict(n_m=(4, 4)), ValueError, r"`n_m` must be \(N, M\) with 1 <= N < M"),
    ],
)
def test_sparsify_refuses_conflicting_arguments_before_any_change(kwargs, error, match):
    model = cnn()
    before = [to_numpy(w) for w in model.weights]
    with pytest.raises(error, match=match):
        keras_er.sparsify(model, **kwargs)
    assert all(np.array_equal(b, to_numpy(w)) for b, w in zip(before, model.weights))


def test_sparsify_accepts_the_implied_density_and_uniform():
    sparse, _ = sparsify_quietly(cnn(), n_m=(2, 4), density=0.5, scheme="uniform", seed=0)
    assert is_two_four(layer_by_name(sparse, "logits"), axis=0)


def test_dense_layers_stay_dense_without_a_warning():
    sparse, messages = sparsify_quietly(cnn(), n_m=(2, 4), dense_layers=["logits"])
    assert layer_by_name(sparse, "logits").active_mask().all() and layer_by_name(sparse, "logits").n_m is None
    assert "logits" not in messages[0]


def dense_mlp(units=(8, 8), inputs=16, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))] + [keras.layers.Dense(u, name=f"d{i}") for i, u in enumerate(units)]
    return keras_er.sparsify(keras.Sequential(layers), density=1.0)


def test_prune_magnitude_keeps_the_n_largest_per_group():
    model = dense_mlp()
    kernels = [to_numpy(layer.kernel) for layer in masks.masked_layers(model)]
    assert prune(model, "magnitude", n_m=(2, 4)) == [0.5, 0.5]
    for layer, kernel in zip(masks.masked_layers(model), kernels):
        groups = np.abs(kernel).T.reshape(kernel.shape[1], -1, 4)  # (out, in / 4, 4)
        threshold = np.sort(groups, axis=-1)[..., 2:3]  # the 2nd largest of each group
        expected = (groups >= threshold).reshape(kernel.shape[1], -1).T
        assert np.array_equal(layer.active_mask(), expected)
        assert layer.n_m == (2, 4)
        assert np.all(to_numpy(layer.kernel)[~expected] == 0)


def test_prune_breaks_ties_to_the_lower_index():
    model = dense_mlp(units=(2,), inputs=8)
    layer = masks.masked_layers(model)[0]
    layer.kernel.assign(np.ones((8, 2), "float32"))
    prune(model, "magnitude", n_m=(2, 4))
    assert layer.active_mask()[:, 0].astype(int).tolist() == [1, 1, 0, 0, 1, 1, 0, 0]


def test_prune_with_n_m_keeps_a_hand_made_two_four_mask():
    model = dense_mlp()
    layers = masks.masked_layers(model)
    hand_made = masks.sample_n_m_masks([(16, 8), (8, 8)], [0, 0], (2, 4), seed=3)
    for layer, mask in zip(layers, hand_made):
        layer.assign_mask(mask)
    prune(model, "magnitude", n_m=(2, 4))
    assert all(np.array_equal(layer.active_mask(), mask) for layer, mask in zip(layers, hand_made))
    with pytest.raises(ValueError, match="Layer 'd0' has 32 of 32 groups of 4 .* fewer than 3 active"):
        prune(model, "magnitude", n_m=(3, 4))


@pytest.mark.parametrize("method", ["random", "snip"])
def test_other_one_shot_methods_give_n_m_masks(method):
    model = dense_mlp()
    data = (np.random.default_rng(0).normal(size=(8, 16)).astype("float32"), np.arange(8) % 8)
    prune(model, method, n_m=(1, 4), data=data if method == "snip" else None)
    assert all(masks.is_n_m(layer.active_mask(), (1, 4), 0) for layer in masks.masked_layers(model))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(method="magnitude", n_m=(2, 4), density=0.25), ValueError, "conflicts with `n_m`"),
        (dict(method="magnitude", n_m=(2, 4), scheme="erk"), ValueError, "`scheme`='erk' does not apply"),
        (dict(method="synflow", n_m=(2, 4)), ValueError, "`synflow` prunes iteratively"),
        (dict(method="magnitude", n_m=(2, 4.0)), TypeError, "`n_m`"),
        (dict(method="magnitude"), TypeError, "needs `density`"),
    ],
)
def test_prune_refuses_bad_arguments(kwargs, error, match):
    model = dense_mlp()
    with pytest.raises(error, match=match):
        prune(model, **kwargs)
    assert all(layer.active_mask().all() for layer in masks.masked_layers(model))


def test_prune_with_n_m_leaves_ungroupable_layers_and_warns():
    model = dense_mlp(units=(6, 4))  # d1's reduction axis has length 6
    with pytest.warns(UserWarning, match=r"leaves these layers' masks as they are: d1 \(reduction axis 0 of \(6, 4\)"):
        prune(model, "magnitude", n_m=(2, 4))
    d0, d1 = masks.masked_layers(model)
    assert masks.is_n_m(d0.active_mask(), (2, 4), 0) and d1.active_mask().all()
    assert (d0.n_m, d1.n_m) == ((2, 4), None)


def test_prune_without_n_m_on_an_n_m_model_warns_and_forgets_the_pattern():
    model = dense_mlp()
    prune(model, "magnitude", n_m=(2, 4))
    with pytest.warns(UserWarning, match=r"the 2:4 masks of d0, d1 are no longer 2:4; pass n_m=\(2, 4\)"):
        prune(model, "magnitude", 0.25)
    assert masks.model_n_m(model) is None
    assert masks.summary(model, print_fn=None)["global_density"] == 0.25


def test_record_n_m_marks_hand_made_masks_and_refuses_others():
    model = dense_mlp(units=(8, 6))
    d0, d1 = masks.masked_layers(model)
    d0.assign_mask(masks.sample_n_m_masks([(16, 8)], [0], (2, 4), seed=0)[0])
    assert masks.record_n_m(model, (2, 4)) == [d0]
    assert masks.model_n_m(model) == (2, 4) and d1.n_m is None
    d0.assign_mask(np.ones((16, 8), bool))  # by hand: the record is stale now
    with pytest.raises(ValueError, match="Layer 'd0' is recorded as 2:4, but its mask is not"):
        masks.model_n_m(model)
    d1.assign_mask(np.eye(8, 6, dtype=bool))
    with pytest.raises(ValueError, match="Layer 'd1' has a mask that is neither 2:4"):
        masks.record_n_m(model, (2, 4))


def test_masks_assign_forgets_the_pattern():
    model = dense_mlp()
    masks.assign_n_m(model, (2, 4), seed=0)
    assert masks.model_n_m(model) == (2, 4)
    masks.assign(model, density=0.5, seed=0)
    assert masks.model_n_m(model) is None


def n_m_classifier(seed=0):
    """16 -> 16 -> 6 -> 4: the last kernel (6, 4) cannot group by 4 and stays dense."""
    keras.utils.set_random_seed(seed)
    units = [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(4)]
    sparse, _ = sparsify_quietly(keras.Sequential([keras.Input((16,)), *units]), n_m=(2, 4), seed=seed)
    sparse.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    return sparse, rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 4, size=32)


def test_zeros_stay_zero_after_training():
    model, x, y = n_m_classifier()
    before = [layer.active_mask() for layer in masks.masked_layers(model)]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for layer, mask in zip(masks.masked_layers(model)[:2], before):
        kernel = to_numpy(layer.kernel_variable)
        assert np.all(kernel[~mask] == 0) and np.count_nonzero(kernel[mask]) == mask.sum()
        assert masks.is_n_m(kernel != 0, (2, 4), 0)
    assert np.count_nonzero(to_numpy(masks.masked_layers(model)[2].kernel_variable)) == 24


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dst_keeps_the_n_m_pattern(method):
    model, x, y = n_m_classifier()
    data = {"data": (x[:8], y[:8])} if method == "rigl" else {}
    dst = keras_er.dst.get(method, update_every=2, drop_fraction=0.5, end_fraction=1.0, **data)
    before = [layer.active_mask() for layer in masks.masked_layers(model)]
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[dst], verbose=0)
    assert [record["step"] for record in dst.history] == [2, 4, 6]
    moved = 0
    *grouped, dense = masks.masked_layers(model)
    assert dense.active_mask().all() and dense.n_m is None
    for layer, old in zip(grouped, before):
        mask = layer.active_mask()
        assert masks.is_n_m(mask, (2, 4), 0) and layer.n_m == (2, 4)
        assert np.all(to_numpy(layer.kernel_variable)[~mask] == 0)
        moved += int(np.count_nonzero(mask & ~old))
    assert moved > 0
    first = dst.history[0]
    hidden = first["layers"][masks.masked_layers(model)[0].name]
    assert hidden == {"active": 128, "dropped": round(first["fraction"] * 128), "grown": hidden["dropped"]}


def test_drop_and_grow_n_m_moves_within_groups():
    rng = np.random.default_rng(0)
    (mask,) = masks.sample_n_m_masks([(12, 5)], [0], (3, 4), seed=0)
    kernel = rng.normal(size=(12, 5)) * mask
    scores = rng.random((12, 5))
    # 15 groups, one free position each: all 15 can move, one per group.
    change = updates.drop_and_grow_n_m(kernel, mask, scores, 15, (3, 4), 0)
    assert masks.is_n_m(change.mask, (3, 4), 0)
    assert np.array_equal(group_counts(change.dropped, 4, 0), group_counts(change.grown, 4, 0))
    assert not np.any(change.grown & mask) and np.all(mask[change.dropped])
    assert np.all(group_counts(change.dropped, 4, 0) == 1)
    with pytest.raises(ValueError, match="cannot move"):
        updates.drop_and_grow_n_m(kernel, mask, scores, 16, (3, 4), 0)
    with pytest.raises(ValueError, match="`mask` is not 3:4 along axis 0"):
        updates.drop_and_grow_n_m(kernel, np.ones((12, 5)), scores, 1, (3, 4), 0)


def test_drop_and_grow_n_m_drops_the_smallest():
    kernel = np.array([[0.5], [0.0], [-0.05], [0.0], [0.3], [0.2], [0.0], [0.0]])
    change = updates.drop_and_grow_n_m(kernel, kernel != 0, np.arange(8.0).reshape(8, 1), 1, (2, 4), 0)
    assert change.dropped[:, 0].astype(int).tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert change.grown[:, 0].astype(int).tolist() == [0, 0, 0, 1, 0, 0, 0, 0]


def test_gradual_pruning_refuses_an_n_m_model():
    model, x, y = n_m_classifier()
    with pytest.raises(ValueError, match=r"GradualPruning prunes weights regardless of groups .* 2:4 masks"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[GradualPruning(1.0, 0.25, 0, 4, 2)])


def test_imp_refuses_an_n_m_model():
    model, x, y = n_m_classifier()
    with pytest.raises(ValueError, match="imp prunes weights regardless of groups"):
        keras_er.pruning.imp(model, (x, y), rounds=1, fit_fn=lambda model, train, round_index: None)


def test_masked_einsum_dense_clone_path_groups_its_summed_axis():
    inputs = keras.Input((3, 8))
    outputs = keras.layers.EinsumDense("abc,cd->abd", output_shape=(3, 4), name="einsum")(inputs)
    sparse, _ = sparsify_quietly(keras.Model(inputs, outputs), n_m=(2, 4))
    layer = layer_by_name(sparse, "einsum")
    assert isinstance(layer, MaskedEinsumDense) and is_two_four(layer, axis=0)
