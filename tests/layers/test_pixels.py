"""The raw-pixel front and its guard: raw images pass untouched, normalised ones give NaN, strip keeps the front."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers.pixels import RawPixelGuard
from keras_er.layers.pixels import check_pixels_match
from keras_er.layers.pixels import takes_raw_pixels
from keras_er.layers.pixels import with_raw_pixel_front
from keras_er.layers.pixels import without_preprocessing
from tests.helpers import to_numpy

MEAN, STD = (125.0, 123.0, 114.0), (63.0, 62.0, 67.0)


def network():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)), name="net")


def test_raw_pixels_of_any_brightness_pass_untouched_and_normalised_images_give_nan():
    net = network()
    model = with_raw_pixel_front(net, MEAN, STD)
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 10, (2, 8, 8, 3)).astype("uint8")  # dim raw images: all values <= 8, none negative
    bright = rng.integers(0, 256, (2, 8, 8, 3)).astype("uint8")
    for pixels in (dark, bright):
        normalised = (pixels.astype("float32") - np.float32(MEAN)) / np.float32(STD)
        np.testing.assert_array_equal(to_numpy(model(pixels)), to_numpy(model(pixels.astype("float32"))))
        np.testing.assert_allclose(to_numpy(model(pixels)), to_numpy(net(normalised)), atol=1e-5)
        assert np.isnan(to_numpy(model(normalised))).all()
    mixed = np.concatenate([bright.astype("float32"), (bright - np.float32(MEAN)) / np.float32(STD)])
    flags = np.isnan(to_numpy(model(mixed))).all(axis=1)
    assert flags.tolist() == [False, False, True, True]  # per image


def test_the_model_is_recognised_saved_and_stripped_to_plain_keras(tmp_path):
    net = keras_er.sparsify(network(), density=0.5, seed=0)
    model = with_raw_pixel_front(net, MEAN, STD)
    assert takes_raw_pixels(model) and without_preprocessing(model) is net and not takes_raw_pixels(net)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.layers[-1], RawPixelGuard)
    np.testing.assert_allclose(to_numpy(reloaded(pixels)), to_numpy(model(pixels)), atol=1e-6)
    plain = keras_er.strip(model)
    assert takes_raw_pixels(plain) and not isinstance(plain.layers[-1], RawPixelGuard)
    assert not [type(layer) for layer in plain._flatten_layers() if type(layer).__module__.startswith("keras_er")]
    np.testing.assert_allclose(to_numpy(plain(pixels)), to_numpy(model(pixels)), atol=1e-5)


def test_training_refuses_normalised_batches_for_a_raw_pixel_model():
    from keras_er.data import ImageBatches

    images = np.zeros((4, 8, 8, 3), "uint8")
    model = with_raw_pixel_front(network(), MEAN, STD)
    normalised = ImageBatches(images, np.zeros(4), MEAN, STD, batch_size=2)
    with pytest.raises(ValueError, match="takes raw pixels.*without normalize=True"):
        keras_er.training.fit(model, normalised)
    check_pixels_match(model, ImageBatches(images, np.zeros(4), batch_size=2))  # raw: fine
    check_pixels_match(network(), normalised)  # a bare network: fine


def test_a_front_for_other_channels_is_refused():
    with pytest.raises(ValueError, match="has 4 channels but the model takes"):
        with_raw_pixel_front(network(), (1.0,) * 3 + (2.0,), (1.0,) * 4)
