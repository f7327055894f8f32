"""Every entry of the shipped zoo, on whichever backend runs the tests."""

import shutil
import subprocess

import numpy as np
import pytest

from keras_er import data
from keras_er import zoo
from keras_er.layers import popup
from keras_er.masks import layer_densities
from keras_er.masks import masked_layers
from keras_er.masks import summary
from keras_er.zoo import registry
from keras_er.zoo import weight_files
from tests.helpers import to_numpy

ENTRIES = registry.load_index()
IDS = [entry["id"] for entry in ENTRIES]


@pytest.fixture(autouse=True)
def no_network_downloads(monkeypatch, tmp_path):
    """An entry outside the wheel comes from the Keras cache or not at all: no test reaches the network
    (CI has none, and a blocked connection could hang); the 'mirror' is an empty local folder."""
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(tmp_path / "no_network"))


def load(entry, **kwargs):
    """The entry's model; an entry kept outside the wheel (an `origin`) is skipped where its file is
    not in the Keras cache (CI has no network; this machine may keep a copy)."""
    if not weight_files.available_offline(entry):
        pytest.skip(f"{entry['id']}: weights outside the wheel, not in {weight_files.cached_path(entry)}")
    return zoo.load(entry["id"], **kwargs)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entry_loads_offline_and_gives_the_reference_logits(entry):
    model = load(entry)  # raw pixels in: the reference batch in pixel units
    logits = to_numpy(model(zoo.reference_pixels(entry), training=False))
    assert np.abs(logits - np.array(entry["reference_logits"])).max() < 1e-4
    bare = load(entry, include_preprocessing=False)  # normalised inputs in
    logits = to_numpy(bare(zoo.reference_batch(tuple(entry["input_shape"])), training=False))
    assert np.abs(logits - np.array(entry["reference_logits"])).max() < 1e-4


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e["scheme"] != "dense"], ids=[e["id"] for e in ENTRIES if e["scheme"] != "dense"]
)
def test_entry_has_the_advertised_densities(entry):
    model = load(entry)
    layers = masked_layers(model)
    shapes = [tuple(layer.kernel.shape) for layer in layers]
    if (entry.get("prune") or {}).get("scope") == "global":  # ranked over all layers: the count is global
        kept = sum(int(to_numpy(layer.mask).sum()) for layer in layers)
        assert kept == entry["weights_kept"] == round(entry["density"] * entry["weights_total"])
    else:  # ER draws, scheme-scoped pruning and DST keep every layer's count
        expected = layer_densities(shapes, entry["density"], entry["scheme"])
        for layer, density in zip(layers, expected):
            mask = to_numpy(layer.mask)
            assert mask.sum() == round(density * mask.size), layer.name
    final = entry["density"] * (entry["popup_density"] if entry.get("popup") else 1.0)
    assert summary(model, print_fn=None)["global_density"] == pytest.approx(final, abs=1e-3)
    if entry.get("popup"):
        for layer in layers:
            frozen = popup.frozen_kernel(shapes[layers.index(layer)], layer.fan_in, layer.resolved_seed)
            np.testing.assert_array_equal(to_numpy(layer.kernel), frozen)
            assert layer.active_mask().sum() == popup.topk_count(to_numpy(layer.mask), layer.popup_density)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entry_accuracy_on_the_first_1000_raw_uint8_test_images(entry):
    try:
        x, y = data.load_arrays(entry["dataset"], "test", download=False)
    except data.DatasetNotFoundError as error:
        pytest.skip(f"{entry['dataset']} test split not available offline: {error}")
    x, y = x[:1000], y[:1000]
    assert x.dtype == np.uint8  # what a user has: the model normalises it
    predicted = np.argmax(to_numpy(load(entry).predict(x, batch_size=250, verbose=0)), axis=1)
    accuracy = float(np.mean(predicted == y))
    recorded = entry["top1_first1000"]
    assert recorded, "the entry records no first-1000 accuracy"
    for backend, value in recorded.items():
        assert abs(accuracy - value) <= 0.005, (backend, value, accuracy)


def test_the_flagship_evaluated_on_data_load_gives_its_published_first_1000_accuracy():
    """One pixel convention: `data.load`'s batches are what the zoo's models take; normalised ones are refused."""
    import keras

    try:
        batches = data.load("cifar10", "test", batch_size=250, limit=1000, download=False)
    except data.DatasetNotFoundError as error:
        pytest.skip(f"cifar10 test split not available offline: {error}")
    entry = next(e for e in ENTRIES if e["id"] == "resnet20_erk_d0.1_cifar10")
    model = zoo.resnet20_erk(density=0.1)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    _, accuracy = model.evaluate(batches, verbose=0)
    for backend, value in entry["top1_first1000"].items():
        assert abs(accuracy - value) <= 0.005, (backend, value, accuracy)
    normalised = data.load("cifar10", "test", batch_size=250, limit=250, download=False, normalize=True)
    loss, _ = model.evaluate(normalised, verbose=0)  # the mix-up: NaN, not a plausible accuracy
    assert np.isnan(loss)
    x = normalised[0][0]
    flagged = np.isnan(to_numpy(model.predict(x, verbose=0))).all(axis=1)
    np.testing.assert_array_equal(flagged, x.min(axis=(1, 2, 3)) < 0)  # every image but a few all-bright ones
    assert flagged.mean() > 0.95


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entry_files_are_not_git_ignored(entry):
    """A weight file that git ignores exists here but is missing from every clone."""
    root = registry.zoo_root()
    if not (root.parent / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    files = [root / entry["id"] / "card.md"]
    if entry.get("origin"):  # kept out of the wheel on purpose: the zoo folder must not hold it
        assert not (root / entry["file"]).exists() and entry["file_bytes"] > 0
    else:
        files.append(weight_files.weight_path(entry, root))
    ignored = subprocess.run(
        ["git", "-C", str(root.parent), "check-ignore", "--no-index", *map(str, files)],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert not ignored, f"git ignores {ignored}: fix .gitignore"


def test_the_flagship_is_the_same_network_under_channels_first():
    import keras

    entry = next(e for e in ENTRIES if e["id"] == "resnet20_erk_d0.1_cifar10")
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = load(entry)
    finally:
        keras.config.set_image_data_format(previous)
    logits = to_numpy(model(zoo.reference_pixels(entry), training=False))
    assert np.abs(logits - np.array(entry["reference_logits"])).max() < 1e-4


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_card_and_entry_files_are_rendered_from_the_index(entry):
    from keras_er.zoo import registry
    from keras_er.zoo.cards import render_card

    folder = registry.zoo_root() / entry["id"]
    assert (folder / "card.md").read_text() == render_card(entry)
    assert registry.read_entry_files(folder) == entry
