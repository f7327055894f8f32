import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_er import masks
from keras_er import zoo
from keras_er.masks import SCHEMES
from keras_er.masks import summary
from keras_er.models import ARCHITECTURES
from keras_er.zoo.cards import POPUP_CARD_LINE
from tests.helpers import to_numpy

REPO = Path(__file__).resolve().parents[2]


def test_every_arch_and_scheme_has_a_constructor():
    names = zoo.list_models()
    assert len(names) == len(ARCHITECTURES) * (len(SCHEMES) + 1)
    for arch in ARCHITECTURES:
        for scheme in (*SCHEMES, "dense"):
            assert callable(getattr(zoo, f"{arch}_{scheme}"))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("density", [0.05, 0.1])
def test_resnet20_constructors_hit_the_global_density(scheme, density):
    model = getattr(zoo, f"resnet20_{scheme}")(density, pretrained=None)
    assert summary(model, print_fn=None)["global_density"] == pytest.approx(density, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_constructor_hits_the_global_density(arch):
    model = getattr(zoo, f"{arch}_erk")(0.1, pretrained=None)
    assert summary(model, print_fn=None)["global_density"] == pytest.approx(0.1, abs=1e-3)


def test_popup_constructor_final_density():
    model = zoo.resnet20_erk(0.5, pretrained=None, popup=True, popup_density=0.2)
    assert summary(model, print_fn=None)["global_density"] == pytest.approx(0.1, abs=1e-3)


def test_export_then_load_is_bit_exact_and_listed(tmp_path):
    model = zoo.resnet20_balanced(0.1, pretrained=None, seed=4)
    entry = zoo.export(model, "resnet20", "balanced", 0.1, root=tmp_path, top1={"jax": 0.5})
    loaded = zoo.resnet20_balanced(0.1, root=tmp_path)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    rows = zoo.available_weights(root=tmp_path)
    assert [r["id"] for r in rows] == [entry["id"]] == ["resnet20_balanced_d0.1_cifar10"]
    assert "| total |" in (tmp_path / entry["id"] / "card.md").read_text()


def test_only_a_popup_card_says_its_kernels_were_never_trained(tmp_path):
    popup = zoo.resnet20_erk(0.5, pretrained=None, popup=True, popup_density=0.2)
    entry = zoo.export(popup, "resnet20", "erk", 0.5, popup=True, popup_density=0.2, root=tmp_path)
    assert POPUP_CARD_LINE in (tmp_path / entry["id"] / "card.md").read_text()
    entry = zoo.export(zoo.resnet20_erk(0.5, pretrained=None), "resnet20", "erk", 0.5, root=tmp_path)
    assert POPUP_CARD_LINE not in (tmp_path / entry["id"] / "card.md").read_text()


def test_kerass_er_zoo_dir_environment_variable_is_honoured(tmp_path, monkeypatch):
    zoo.export(zoo.resnet20_dense(pretrained=None), "resnet20", "dense", root=tmp_path)
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(tmp_path))
    assert zoo.resnet20_dense().name == "resnet20"


def test_missing_weights_name_what_exists(tmp_path):
    zoo.export(zoo.resnet20_erk(0.1, pretrained=None), "resnet20", "erk", 0.1, root=tmp_path)
    with pytest.raises(ValueError, match="resnet20_erk_d0.05.*Published for resnet20: resnet20_erk_d0.1_cifar10"):
        zoo.resnet20_erk(0.05, root=tmp_path)
    with pytest.raises(ValueError, match="pretrained=None"):
        zoo.vgg16_erk(0.1, root=tmp_path)
    with pytest.raises(ValueError, match="`classes`=100 differs"):
        zoo.resnet20_erk(0.1, root=tmp_path, classes=100)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: zoo.build("resnet21"), "Unknown `arch`"),
        (lambda: zoo.build("resnet20", "snip"), "dense"),
        (lambda: zoo.resnet20_erk(0, pretrained=None), "`density`"),
        (lambda: zoo.resnet20_erk(0.1, pretrained=1), "`pretrained`"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ('{"entries": 3}', "'entries' list"),
        ('{"format_version": 9, "entries": []}', "Upgrade keras_er"),
        ('{"entries": [{"id": "x"}]}', "entry without"),
    ],
)
def test_a_malformed_index_is_refused(tmp_path, text, match):
    (tmp_path / "index.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        zoo.resnet20_erk(0.1, root=tmp_path)


EXPORT_SCRIPT = """
import sys, keras_er
model = keras_er.zoo.resnet20_erk(0.1, pretrained=None, seed=3)
keras_er.zoo.export(model, "resnet20", "erk", 0.1, root=sys.argv[1])
"""


@pytest.mark.cross_backend
def test_an_entry_exported_on_another_backend_gives_the_same_logits(tmp_path):
    here = keras.backend.backend()
    other = {"jax": "torch", "torch": "tensorflow", "tensorflow": "jax"}[here]
    env = {**os.environ, "KERAS_BACKEND": other, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT, str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    (entry,) = json.loads((tmp_path / "index.json").read_text())["entries"]
    assert entry["exported_on"] == other
    model = zoo.resnet20_erk(0.1, root=tmp_path)  # takes raw pixels
    logits = to_numpy(model(zoo.reference_pixels(entry), training=False))
    difference = np.abs(logits - np.array(entry["reference_logits"])).max()
    print(f"max |logits({here}) - logits({other})| = {difference:.2e}")
    assert difference < 1e-4


def test_load_by_id_gives_the_published_model_and_names_what_exists(tmp_path):
    model = zoo.resnet20_erk(0.2, pretrained=None, seed=3)
    entry = zoo.export(model, "resnet20", "erk", 0.2, root=tmp_path)
    loaded = zoo.load(entry["id"], root=tmp_path)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    with pytest.raises(ValueError, match="No zoo entry 'nope'; published: resnet20_erk_d0.2_cifar10"):
        zoo.load("nope", root=tmp_path)


def test_pruned_and_dst_entries_are_their_own_entries_with_masks_from_the_file(tmp_path):
    from keras_er import pruning

    model = zoo.build("resnet20", "uniform", 1.0, pretrained=None, include_preprocessing=False)
    pruning.prune(model, "magnitude", 0.1)
    prune = {"method": "magnitude", "scope": "global", "iterations": 100}
    entry = zoo.export(model, "resnet20", "erk", 0.1, prune=prune, root=tmp_path)
    assert entry["id"] == "resnet20_erk_d0.1_magnitude-global_cifar10"
    assert "pruned at initialisation by magnitude" in (tmp_path / entry["id"] / "card.md").read_text()
    loaded = zoo.load(entry["id"], root=tmp_path)
    expected = [to_numpy(layer.mask) for layer in masks.masked_layers(model)]
    assert all((to_numpy(layer.mask) == mask).all() for layer, mask in zip(masks.masked_layers(loaded), expected))
    with pytest.raises(ValueError, match="No published weights"):
        zoo.resnet20_erk(0.1, root=tmp_path)  # an ER request does not get the pruned masks
    dst = {"method": "set", "update_every": 100, "drop_fraction": 0.3, "end_fraction": 0.75}
    ticket = zoo.build("resnet20", "erk", 0.1, pretrained=None, include_preprocessing=False)
    assert zoo.export(ticket, "resnet20", "erk", 0.1, dst=dst, root=tmp_path)["id"] == "resnet20_erk_d0.1_set_cifar10"
    assert zoo.load("resnet20_erk_d0.1_set_cifar10", root=tmp_path) is not None


def test_a_random_model_takes_raw_pixels_with_its_datasets_statistics():
    from keras_er.layers.pixels import takes_raw_pixels

    with pytest.raises(ValueError, match="dataset="):
        zoo.resnet20_erk(0.1, pretrained=None, input_shape=(28, 28, 1))  # whose mean/std? not guessed
    with pytest.raises(ValueError, match="`dataset`"):
        zoo.build("resnet20", "erk", 0.1, dataset="fashion_mnist")  # a pretrained model has its entry's
    model = zoo.resnet20_erk(0.1, pretrained=None, input_shape=(28, 28, 1), dataset="fashion_mnist")
    assert takes_raw_pixels(model)
    config = model.get_layer("normalize_pixels").get_config()
    assert np.ravel(config["mean"]).tolist() == pytest.approx([72.94]) and np.ravel(config["variance"]) ** 0.5 == (
        pytest.approx([90.02])
    )
    pixels = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype("float32")
    bare = model.layers[2]
    np.testing.assert_allclose(
        to_numpy(model(pixels)), to_numpy(bare((pixels - 72.94) / 90.02)), atol=1e-4
    )  # the front is the only difference
    assert np.isnan(to_numpy(model((pixels - 72.94) / 90.02))).all()  # normalised twice: refused loudly


def test_a_zoo_constructor_is_one_documented_function():
    from keras_er import zoo

    assert zoo.resnet20_erk is zoo.resnet20_erk and zoo.get_constructor("vgg16_dense") is zoo.vgg16_dense
    assert zoo.resnet20_erk.__name__ == "resnet20_erk" and zoo.resnet20_erk.__module__ == "keras_er.zoo"
    assert "density:" in zoo.resnet20_erk.__doc__ and "density:" not in zoo.resnet20_dense.__doc__
    assert "keras_er.zoo.resnet20_balanced(density=0.1, pretrained=None)" in zoo.resnet20_balanced.__doc__


@pytest.mark.parametrize("seed", [True, 1.0, np.float32(1), "1", -1, None])
@pytest.mark.parametrize("scheme", ["dense", "erk"])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused_before_the_index_is_searched(scheme, seed):
    """`True == 1` and `1.0 == 1`: compared as they are, they would load seed 1's published weights."""
    for pretrained in (True, None):
        with pytest.raises(ValueError, match="`seed` must be a non-negative integer"):
            zoo.build("resnet20", scheme, 0.1, pretrained=pretrained, seed=seed)


def test_the_dense_constructor_loads_a_published_seed_like_its_id():
    by_argument = zoo.resnet20_dense(seed=1)
    by_id = zoo.load("resnet20_dense_cifar10_s1")
    seed_0 = zoo.resnet20_dense()
    for a, b in zip(by_argument.weights, by_id.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert not np.array_equal(to_numpy(by_argument.weights[0]), to_numpy(seed_0.weights[0]))
