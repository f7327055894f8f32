import warnings

import keras
import numpy as np
import pytest

import keras_er
from keras_er import masks
from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D
from keras_er.layers import in_place
from tests.helpers import images
from tests.helpers import to_numpy


def functional_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.Conv2D(16, 1, name="pw")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs)


def test_outputs_equal_the_dense_model_with_masked_weights():
    model = functional_cnn()
    x, _ = images(4)
    original = [to_numpy(w) for w in model.weights]
    sparse = keras_er.sparsify(model, density=0.3, scheme="erk", seed=0, method="exact")
    # The input model is not changed.
    for w, before in zip(model.weights, original):
        np.testing.assert_array_equal(to_numpy(w), before)
    for layer in masks.masked_layers(sparse):
        model.get_layer(layer.name).kernel.assign(to_numpy(layer.kernel) * to_numpy(layer.mask))
    np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(model(x)), atol=1e-5)
    kinds = {type(l) for l in masks.masked_layers(sparse)}
    assert kinds == {MaskedConv2D, MaskedDepthwiseConv2D, MaskedDense}


@pytest.mark.parametrize("scheme", masks.SCHEMES)
def test_global_density_meets_the_target(scheme):
    sparse = keras_er.sparsify(functional_cnn(), density=0.2, scheme=scheme, method="exact")
    report = masks.summary(sparse, print_fn=None)
    assert report["global_density"] == pytest.approx(0.2, abs=2e-3)
    expected = masks.layer_densities([r["shape"] for r in report["layers"]], 0.2, scheme)
    for row, density in zip(report["layers"], expected):
        assert row["nonzeros"] == round(density * row["size"])


def test_sequential_and_nested_models_are_sparsified():
    block = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, name="inner")])
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6, name="outer"), block, keras.layers.Dense(2, name="last")]
    )
    sparse = keras_er.sparsify(model, density=0.5, scheme="uniform")
    assert [l.name for l in masks.masked_layers(sparse)] == ["outer", "inner", "last"]
    x = np.ones((2, 5), "float32")
    assert to_numpy(sparse(x)).shape == (2, 2)


def test_same_seed_same_masks_and_trained_weights_are_kept():
    model = functional_cnn()
    a = keras_er.sparsify(model, density=0.1, seed=3)
    b = keras_er.sparsify(model, density=0.1, seed=3)
    for la, lb in zip(masks.masked_layers(a), masks.masked_layers(b)):
        np.testing.assert_array_equal(to_numpy(la.mask), to_numpy(lb.mask))
        kept = to_numpy(la.mask) == 1
        original = to_numpy(model.get_layer(la.name).kernel)
        np.testing.assert_array_equal(to_numpy(la.kernel)[kept], original[kept])


def test_include_exclude_and_dense_layers_by_name():
    sparse = keras_er.sparsify(functional_cnn(), density=0.3, exclude=["dw"], dense_layers=("head",))
    names = [l.name for l in masks.masked_layers(sparse)]
    assert "dw" not in names and type(sparse.get_layer("dw")) is keras.layers.DepthwiseConv2D
    assert masks.summary(sparse, print_fn=None)["layers"][-1]["density"] == 1.0
    only = keras_er.sparsify(functional_cnn(), density=0.3, include=["fc", "head"])
    assert [l.name for l in masks.masked_layers(only)] == ["fc", "head"]


def test_the_dense_and_the_sparse_model_train_independently():
    dense = functional_cnn()
    sparse = keras_er.sparsify(dense, density=0.5)
    x, y = images()
    for model in (dense, sparse, dense, sparse):  # JAX donates buffers: none may be shared
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y % 4)
    assert not np.array_equal(to_numpy(dense.layers[-1].bias), to_numpy(sparse.layers[-1].bias))


def test_popup_mode_trains_only_scores():
    sparse = keras_er.sparsify(functional_cnn(), density=0.5, popup=True, popup_density=0.4)
    trainable = {w.path.split("/")[-2] + "/" + w.name for w in sparse.trainable_weights}
    assert trainable == {f"{name}/scores" for name in ("stem", "dw", "pw", "fc", "head")}
    bn = next(l for l in sparse.layers if isinstance(l, keras.layers.BatchNormalization))
    sparse.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = images()
    sparse.fit(x, y % 4, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(to_numpy(bn.gamma), 1.0)
    np.testing.assert_array_equal(to_numpy(bn.beta), 0.0)
    assert np.any(to_numpy(bn.moving_mean) != 0.0), "BN statistics still update"


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.fc = keras.layers.Dense(2)

    def call(self, x):
        return self.fc(x)


@pytest.mark.parametrize(
    "make, kwargs, error, match",
    [
        (Subclassed, {}, ValueError, "'subclassed' is not built"),
        (lambda: keras.Sequential([keras.layers.Dense(2)]), {}, ValueError, "not built"),
        (
            lambda: keras.Sequential([keras.Input((4,)), keras.layers.Flatten()]),
            {},
            ValueError,
            "no layers to sparsify",
        ),
        (functional_cnn, {"density": 2.0}, ValueError, "`density` must be in"),
        (functional_cnn, {"scheme": "magnitude"}, ValueError, "erk"),
        (functional_cnn, {"include": ["nope"]}, ValueError, r"`include` item 'nope' names no layer"),
        (functional_cnn, {"exclude": ["fc", "x"]}, ValueError, r"`exclude` item 'x' names no layer"),
        (functional_cnn, {"popup_density": 0}, ValueError, "`popup_density`"),
        (functional_cnn, {"dense_layers": ("nope",)}, ValueError, "nope"),
        (functional_cnn, {"density": float("nan")}, ValueError, "`density` must be in"),
        (functional_cnn, {"density": "0.1"}, TypeError, "`density`"),
        (functional_cnn, {"method": "magic"}, ValueError, "bernoulli"),
    ],
)
def test_bad_input_raises_named_errors_and_leaves_the_model_unchanged(make, kwargs, error, match):
    model = make()
    before = [to_numpy(w) for w in model.weights]
    with pytest.raises(error, match=match):
        keras_er.sparsify(model, **kwargs)
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), value)


def test_the_input_model_is_not_modified():
    model = functional_cnn()
    before = [to_numpy(w) for w in model.weights]
    keras_er.sparsify(model, density=0.2, popup=True)
    keras_er.sparsify(model, density=0.2)
    assert len(model.weights) == len(before)
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), value)
    assert all(w.trainable for w in model.layers[2].weights[:2]), "BN left trainable"


def test_not_a_model_is_a_type_error():
    with pytest.raises(TypeError, match="keras.Model"):
        keras_er.sparsify(keras.layers.Dense(3))


def test_lora_layers_are_refused_rather_than_silently_changed():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.layers[0].enable_lora(2)
    with pytest.raises(ValueError, match="lora"):
        keras_er.sparsify(model)


def test_conv1d_and_conv3d_are_masked_and_keep_their_outputs():
    import warnings

    from keras_er.layers import MaskedConv1D
    from keras_er.layers import MaskedConv3D

    rng = np.random.default_rng(0)
    for layer, shape, masked_class in (
        (keras.layers.Conv1D(4, 3, padding="same"), (10, 3), MaskedConv1D),
        (keras.layers.Conv3D(4, 2), (4, 4, 4, 2), MaskedConv3D),
    ):
        inputs = keras.Input(shape)
        model = keras.Model(inputs, layer(inputs))
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="sparsify leaves")  # nothing left dense
            sparse = keras_er.sparsify(model, density=0.5, method="exact")
        (masked,) = masks.masked_layers(sparse)
        assert isinstance(masked, masked_class)
        mask = to_numpy(masked.mask)
        assert mask.sum() == round(0.5 * mask.size)
        x = rng.normal(size=(2, *shape)).astype("float32")
        layer.kernel.assign(to_numpy(layer.kernel) * mask)
        np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)


def test_layers_left_dense_are_named_and_counted_by_summary():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    with pytest.warns(UserWarning, match=r"leaves these weights dense: dw \(DepthwiseConv2D: kernel\)"):
        sparse = keras_er.sparsify(model, density=0.2, method="exact", exclude=["dw"])
    report = masks.summary(sparse, print_fn=None)
    (depthwise,) = [row for row in report["layers"] if row["name"] == "dw"]
    assert depthwise["shape"] == (3, 3, 2, 1)
    assert depthwise["masked"] is False and depthwise["density"] == 1.0
    assert report["size"] == 18 + 32 * 4
    assert report["nonzeros"] == 18 + round(0.2 * 128)


def test_an_embedding_is_masked_in_place_in_the_copy():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(10, 4, name="emb")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="sparsify leaves")  # nothing left dense
        sparse = keras_er.sparsify(model, density=0.2, method="exact", scheme="uniform")
    embedding, head = masks.masked_layers(sparse)
    assert isinstance(embedding, in_place.InPlaceMasked) and embedding is not model.layers[1]
    assert in_place.keras_class(embedding) is keras.layers.Embedding
    assert isinstance(embedding, in_place.MaskHolder), "a top-level layer masked in place saves its mask to .keras"
    assert to_numpy(embedding.mask).sum() == 8 and to_numpy(head.mask).sum() == 16
    tokens = np.arange(5)[None]
    table = to_numpy(embedding.embeddings)
    np.testing.assert_array_equal(to_numpy(embedding(tokens))[0], table[:5])
    assert (table[to_numpy(embedding.mask) == 0] == 0).all()
    assert type(model.layers[1]) is keras.layers.Embedding, "the input model is not modified"


def test_separable_conv2d_and_einsum_dense_are_masked_and_keep_their_outputs():
    from keras_er.layers import MaskedEinsumDense
    from keras_er.layers import MaskedSeparableConv2D

    inputs = keras.Input((6, 6, 2))
    separable = keras.layers.SeparableConv2D(8, 3, depth_multiplier=2, padding="same", name="sep")
    x = keras.layers.Reshape((36, 8))(separable(inputs))
    einsum = keras.layers.EinsumDense("abc,cde->abde", output_shape=(36, 3, 4), bias_axes="de", name="qkv")
    model = keras.Model(inputs, einsum(x))
    with pytest.warns(UserWarning, match=r"dense: sep \(MaskedSeparableConv2D: depthwise_kernel\)\. "):
        sparse = keras_er.sparsify(model, density=0.5, scheme="uniform", method="exact")
    masked_separable, masked_einsum = masks.masked_layers(sparse)
    assert isinstance(masked_separable, MaskedSeparableConv2D)
    assert isinstance(masked_einsum, MaskedEinsumDense)
    # The pointwise kernel is the ER graph; the depthwise kernel stays dense.
    assert to_numpy(masked_separable.mask).shape == (1, 1, 4, 8)
    assert to_numpy(masked_einsum.mask).shape == (8, 3, 4)
    for original, masked in ((separable, masked_separable), (einsum, masked_einsum)):
        mask = to_numpy(masked.mask)
        assert mask.sum() == round(0.5 * mask.size)
        kernel = separable.pointwise_kernel if original is separable else einsum.kernel
        kernel.assign(to_numpy(kernel) * mask)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    rows = {(row["name"], row["masked"]): row for row in masks.summary(sparse, print_fn=None)["layers"]}
    assert rows[("sep", False)]["shape"] == (3, 3, 2, 2) and rows[("sep", False)]["density"] == 1.0
    assert rows[("sep", True)]["density"] == 0.5 and rows[("qkv", True)]["density"] == 0.5


def test_popup_freezes_both_separable_kernels_and_trains_only_scores():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.layers.SeparableConv2D(4, 3, name="sep")(inputs))
    sparse = keras_er.sparsify(model, density=0.5, popup=True)
    assert [weight.path for weight in sparse.trainable_weights] == ["sep/scores"]
    again = keras_er.sparsify(model, density=0.5, popup=True)
    for first, second in zip(sparse.weights, again.weights):  # frozen weights come from the seed
        np.testing.assert_array_equal(to_numpy(first), to_numpy(second))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strides=2, padding="same"),
        dict(strides=2),
        dict(dilation_rate=2),
        dict(strides=2, padding="same", output_padding=1),
        dict(strides=3, output_padding=2),
    ],
    ids=["same_s2", "valid_s2", "dilated", "same_outpad", "valid_outpad"],
)
def test_conv2d_transpose_is_masked_and_keeps_its_outputs(kwargs):
    from keras_er.layers import MaskedConv2DTranspose

    inputs = keras.Input((5, 6, 3))
    layer = keras.layers.Conv2DTranspose(4, 3, **kwargs)
    model = keras.Model(inputs, layer(inputs))
    sparse = keras_er.sparsify(model, density=0.5, method="exact")
    (masked,) = masks.masked_layers(sparse)
    assert isinstance(masked, MaskedConv2DTranspose)
    mask = to_numpy(masked.mask)
    assert mask.shape == (3, 3, 4, 3) and mask.sum() == 54
    layer.kernel.assign(to_numpy(layer.kernel) * mask)
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype("float32")
    expected = to_numpy(model(x))
    assert tuple(sparse.outputs[0].shape)[1:] == expected.shape[1:]
    np.testing.assert_allclose(to_numpy(sparse(x)), expected, rtol=1e-5, atol=1e-5)


def test_a_causal_conv1d_is_masked_in_place_and_keeps_its_padding():
    inputs = keras.Input((10, 3))
    x = keras.layers.Conv1D(4, 3, padding="causal", name="causal")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    sparse = keras_er.sparsify(model, density=1.0)
    causal, head = masks.masked_layers(sparse)
    assert isinstance(causal, in_place.InPlaceMasked) and causal.padding == "causal"
    assert in_place.keras_class(causal) is keras.layers.Conv1D
    x = np.random.default_rng(0).normal(size=(2, 10, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
