import io
import zipfile

import keras
import numpy as np
import pytest

from keras_er.layers import MaskedConv2D
from keras_er.layers import MaskedDense
from keras_er.layers import MaskedDepthwiseConv2D
from keras_er.masks import masked_layers
from tests.helpers import OPTIMIZERS
from tests.helpers import images
from tests.helpers import masked_cnn
from tests.helpers import masked_weights
from tests.helpers import to_numpy

# (masked layer, the Keras layer it replaces, input shape)
PAIRS = {
    "dense": (
        lambda: MaskedDense(6, activation="relu", density=0.4, seed=1),
        lambda: keras.layers.Dense(6, activation="relu"),
        (3, 5),
    ),
    "conv": (
        lambda: MaskedConv2D(6, 3, strides=2, padding="same", density=0.4, seed=1),
        lambda: keras.layers.Conv2D(6, 3, strides=2, padding="same"),
        (2, 9, 9, 4),
    ),
    "conv_dilated_grouped": (
        lambda: MaskedConv2D(6, 3, dilation_rate=2, groups=2, density=0.4, seed=1),
        lambda: keras.layers.Conv2D(6, 3, dilation_rate=2, groups=2),
        (2, 9, 9, 4),
    ),
    "depthwise": (
        lambda: MaskedDepthwiseConv2D(3, depth_multiplier=2, density=0.4, seed=1),
        lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
        (2, 9, 9, 4),
    ),
}


@pytest.mark.parametrize("name", PAIRS)
def test_forward_equals_the_keras_layer_with_the_masked_kernel(name):
    make_masked, make_reference, shape = PAIRS[name]
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    masked, reference = make_masked(), make_reference()
    y = to_numpy(masked(x))
    reference(x)
    kernel = to_numpy(masked.kernel) * to_numpy(masked.mask)
    bias = to_numpy(masked.bias) + 0.5
    masked.bias.assign(bias)
    reference.set_weights([kernel, bias])
    np.testing.assert_allclose(to_numpy(masked(x)), to_numpy(reference(x)), atol=1e-5)
    assert y.shape == to_numpy(reference(x)).shape


@pytest.mark.parametrize("name", PAIRS)
def test_config_round_trip(name):
    layer = PAIRS[name][0]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("name", PAIRS)
def test_masked_kernel_entries_are_zero_and_mask_not_trainable(name):
    make_masked, _, shape = PAIRS[name]
    layer = make_masked()
    layer(np.zeros(shape, "float32"))
    kernel, mask = to_numpy(layer.kernel), to_numpy(layer.mask)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.all(kernel[mask == 0] == 0)
    assert 0.2 < mask.mean() < 0.6
    assert all(w.name != "mask" for w in layer.trainable_weights)


def test_standalone_mask_depends_only_on_the_seed():
    a, b, c = (MaskedDense(32, density=0.2, seed=s) for s in (4, 4, 5))
    for layer in (a, b, c):
        layer.build((None, 16))
    assert np.array_equal(to_numpy(a.mask), to_numpy(b.mask))
    assert not np.array_equal(to_numpy(a.mask), to_numpy(c.mask))


def test_without_density_the_mask_starts_dense():
    layer = MaskedDense(4)
    layer.build((None, 3))
    assert to_numpy(layer.mask).min() == 1.0


def fit_and_check_sparsity(model, optimizer, epochs=2):
    """Fit `model` briefly; masks unchanged, masked weights exactly 0, others trained."""
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = masked_weights(model)
    x, y = images()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    assert not any(w.name == "mask" for w in model.trainable_weights)
    for name, (kernel, mask) in masked_weights(model).items():
        np.testing.assert_array_equal(mask, before[name][1])
        assert np.all(kernel[mask == 0] == 0), name
        assert not np.allclose(kernel[mask == 1], before[name][0][mask == 1]), name


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_masked_weights_stay_exactly_zero_after_fit(optimizer):
    fit_and_check_sparsity(masked_cnn(), OPTIMIZERS[optimizer]())


@pytest.fixture
def dtype_policy(request):
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_masked_weights_stay_exactly_zero_under_mixed_precision(dtype_policy):
    model = masked_cnn()
    compute_dtype = keras.backend.standardize_dtype(model(images(2)[0]).dtype)
    assert compute_dtype == dtype_policy.split("_")[1]
    assert all(layer.kernel.dtype == "float32" for layer in masked_layers(model))
    fit_and_check_sparsity(model, keras.optimizers.SGD(0.1, momentum=0.9))


def test_a_saved_and_reloaded_model_keeps_training_sparse(tmp_path):
    model = masked_cnn(seed=5)
    fit_and_check_sparsity(model, keras.optimizers.Adam(0.01), epochs=1)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    for name, (_, mask) in masked_weights(model).items():
        np.testing.assert_array_equal(masked_weights(reloaded)[name][1], mask)
    fit_and_check_sparsity(reloaded, keras.optimizers.Adam(0.01), epochs=1)


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_save_and_load_round_trip_bit_exactly(tmp_path, suffix):
    model = masked_cnn(seed=3)
    x, _ = images(4)
    path = str(tmp_path / f"model{suffix}")
    if suffix == ".keras":
        model.save(path)
        loaded = keras.models.load_model(path)
    else:
        model.save_weights(path)
        loaded = masked_cnn(seed=99)
        loaded.load_weights(path)
    for a, b in zip(model.weights, loaded.weights):
        assert a.name == b.name
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(loaded(x)))


def _keras_file_masks(path):
    """{h5 dataset path: array} of every mask stored in the `.keras` file `path` (the last entry of a masked layer)."""
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        found = {}

        def collect(name, item):
            if isinstance(item, h5py.Dataset):
                found[name] = item[()]

        weights.visititems(collect)
    layers = {name.rsplit("/vars/", 1)[0] for name in found if "masked" in name}
    return {name: found[name] for name in found if name.rsplit("/vars/", 1)[0] in layers and _is_mask(found[name])}


def _is_mask(value):
    return value.ndim >= 2 and np.isin(value, (0, 1)).all()


def test_masks_are_uint8_in_memory_and_in_keras_files(tmp_path):
    model = masked_cnn(seed=4)
    assert {layer.mask.dtype for layer in masked_layers(model)} == {"uint8"}
    model.save(tmp_path / "model.keras")
    stored = _keras_file_masks(tmp_path / "model.keras")
    assert len(stored) == len(masked_layers(model))
    assert {value.dtype for value in stored.values()} == {np.dtype("uint8")}, "one byte per weight"


def test_a_keras_file_with_float32_masks_loads_into_uint8_masks(tmp_path):
    h5py = pytest.importorskip("h5py")
    model = masked_cnn(seed=6)
    x, _ = images(3)
    model.save(tmp_path / "new.keras")
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(tmp_path / "new.keras") as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as weights:
                    for name in _keras_file_masks(tmp_path / "new.keras"):
                        value = weights[name][()].astype("float32")  # masks as float32 variables wrote them
                        del weights[name]
                        weights[name] = value
                data = buffer.getvalue()
            target.writestr(item, data)
    assert {value.dtype for value in _keras_file_masks(old).values()} == {np.dtype("float32")}
    loaded = keras.models.load_model(old)
    for layer, original in zip(masked_layers(loaded), masked_layers(model)):
        assert layer.mask.dtype == "uint8"
        np.testing.assert_array_equal(to_numpy(layer.mask), to_numpy(original.mask))
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_assign_mask_sets_mask_and_zeroes_kernel():
    layer = MaskedDense(3)
    layer.build((None, 4))
    mask = np.eye(4, 3, dtype=bool)
    layer.assign_mask(mask)
    np.testing.assert_array_equal(to_numpy(layer.mask), mask.astype("uint8"))
    assert np.all(to_numpy(layer.kernel)[~mask] == 0)


@pytest.mark.parametrize(
    "mask, match",
    [(np.ones((3, 4)), r"kernel's shape \(4, 3\)"), (np.full((4, 3), 0.5), "binary")],
)
def test_assign_mask_rejects_bad_masks_and_changes_nothing(mask, match):
    layer = MaskedDense(3)
    layer.build((None, 4))
    kernel = to_numpy(layer.kernel)
    with pytest.raises(ValueError, match=match):
        layer.assign_mask(mask)
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)
    assert to_numpy(layer.mask).min() == 1.0


def test_assign_mask_on_an_unbuilt_layer_is_refused():
    with pytest.raises(ValueError, match="not built"):
        MaskedDense(3).assign_mask(np.ones((4, 3)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MaskedDense(4, density=0), "`density` must be in"),
        (lambda: MaskedDense(4, density=1.5), "`density` must be in"),
        (lambda: MaskedDense(4, popup=True, popup_density=0), "`popup_density`"),
        (lambda: MaskedDense(0), "`units`"),
        (lambda: MaskedDense(4, seed=-3), "`seed`"),
        (lambda: MaskedConv2D(4, 3, padding="full"), "`padding` must be one of"),
        (lambda: MaskedConv2D(4, (3, 3, 3)), "`kernel_size`"),
        (lambda: MaskedConv2D(6, 3, groups=4), "divisible by `groups`"),
        (lambda: MaskedConv2D(4, 3, data_format="nhwc"), "`data_format`"),
        (lambda: MaskedDepthwiseConv2D(3, depth_multiplier=0), "`depth_multiplier`"),
    ],
)
def test_bad_constructor_arguments_raise_named_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_popup_must_be_a_bool():
    with pytest.raises(TypeError, match="`popup`"):
        MaskedDense(4, popup="yes")
