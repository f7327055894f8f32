"""Run folders: one pixel convention, and folders written before it (a bare network on normalised batches)."""

import json

import keras
import numpy as np
import pytest

from keras_er import data
from keras_er import training
from keras_er.app import cli
from keras_er.app import runs
from keras_er.layers.pixels import takes_raw_pixels
from keras_er.layers.pixels import without_preprocessing
from keras_er.training.recipe import Recipe
from tests import helpers
from tests.helpers import StopAt
from tests.helpers import to_numpy

# What `keras-er train` wrote into config.json before runs recorded their pixel convention.
OLD_CONFIG = {
    "model": "tiny_run_net",
    "scheme": "erk",
    "density": 0.2,
    "popup": False,
    "popup_density": 0.5,
    "dataset": "cifar10",
    "seed": 0,
    "limit": 100,
    "dst": None,
    "prune": None,
    "command": "keras-er train --model tiny_run_net --density 0.2 --epochs 2 --batch-size 50 --limit 100 --out old",
    "backend": "jax",
    "devices": 1,
    "engine": "single",
}
OLD_RECIPE = Recipe(epochs=2, batch_size=50, warmup_epochs=1)
RESUME = [
    "train",
    "--model",
    "tiny_run_net",
    "--density",
    "0.2",
    "--epochs",
    "2",
    "--batch-size",
    "50",
    "--limit",
    "100",
]


@pytest.fixture(autouse=True)
def tiny_run_net():
    """A registered architecture that trains in a second: conv, BatchNorm, pooling, classifier."""
    from keras_er import architectures

    def build(input_shape, classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, strides=4)(inputs)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(classes)(x), name="tiny_run_net")

    architectures.register_architecture("tiny_run_net", build)
    yield "tiny_run_net"
    architectures.unregister_architecture("tiny_run_net")


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    return helpers.tiny_cifar(tmp_path, monkeypatch, images=150)


def old_format_run(folder, stop_at=None):
    """Train as `keras-er train` did before: the bare network on normalised batches, config without `inputs`."""
    keras.utils.set_random_seed(0)
    model = runs.build_model(OLD_CONFIG)
    assert not takes_raw_pixels(model)  # no `inputs` in the config: the bare network
    train = data.load("cifar10", "train", 50, seed=0, limit=100, normalize=True)
    test = data.load("cifar10", "test", 256, normalize=True)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(OLD_CONFIG, indent=1))
    callbacks = [StopAt(stop_at)] if stop_at else []
    try:
        training.fit(model, train, OLD_RECIPE, validation=test, out_dir=folder, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        return None
    model.save_weights(str(folder / "model.weights.h5"))
    return model


def test_a_new_run_records_raw_pixels_and_its_model_takes_them(tiny_cifar, tmp_path):
    run = tmp_path / "run"
    assert cli.main(RESUME[:-4] + ["--epochs", "1", "--batch-size", "50", "--limit", "100", "--out", str(run)]) == 0
    config, model = runs.load_run(run)
    assert config["inputs"] == "pixels" and takes_raw_pixels(model)


def test_an_old_format_run_resumes_as_it_would_have_continued(tiny_cifar, tmp_path):
    uninterrupted = old_format_run(tmp_path / "whole")
    assert old_format_run(tmp_path / "old", stop_at=1) is None  # killed after epoch 1's backup
    assert cli.main(RESUME + ["--out", str(tmp_path / "old"), "--resume"]) == 0
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    assert "inputs" not in config  # the folder keeps its own record
    _, resumed = runs.load_run(tmp_path / "old")
    for expected, got in zip(uninterrupted.weights, without_preprocessing(resumed).weights):
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5, err_msg=expected.path)


def test_an_old_format_run_loads_exports_and_evaluates_on_raw_pixels(tiny_cifar, tmp_path, monkeypatch, capsys):
    bare = old_format_run(tmp_path / "old")
    config, model = runs.load_run(tmp_path / "old")
    assert takes_raw_pixels(model) and without_preprocessing(model).count_params() == bare.count_params()
    pixels, _ = data.load("cifar10", "test", as_numpy=True)
    normalised, _ = data.load("cifar10", "test", as_numpy=True, normalize=True)
    np.testing.assert_allclose(to_numpy(model(pixels)), to_numpy(bare(normalised)), atol=1e-4)
    root = tmp_path / "zoo"
    assert cli.main(["export", str(tmp_path / "old"), "--root", str(root)]) == 0
    (entry,) = json.loads((root / "index.json").read_text())["entries"]
    assert entry["id"] == "tiny_run_net_erk_d0.2_cifar10_e2_b50_limit100"
    capsys.readouterr()
    assert cli.main(["evaluate", "--run", str(tmp_path / "old")]) == 0
    report = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(root))
    assert cli.main(["evaluate", "--zoo", entry["id"]]) == 0
    assert (
        json.loads(capsys.readouterr().out)["top1"]
        == report["top1"]
        == pytest.approx(entry["top1"][keras.backend.backend()])
    )


def test_a_folder_with_an_unknown_pixel_convention_is_refused(tiny_cifar, tmp_path, capsys):
    old_format_run(tmp_path / "old")
    config = {**OLD_CONFIG, "inputs": "scaled"}
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert cli.main(["export", str(tmp_path / "old"), "--root", str(tmp_path / "zoo")]) == 2
    assert "inputs 'scaled'" in capsys.readouterr().err and not (tmp_path / "zoo").exists()
