"""Structure promises: lazy imports, keras-free masks, and one-edit registries the CLI reads."""

import math
import os
import subprocess
import sys

import pytest

from keras_er import masks
from keras_er.app import cli
from keras_er.architectures import register_architecture
from keras_er.architectures import unregister_architecture


def _modules_after(statement, backend="jax"):
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_import_keras_er_loads_no_framework():
    loaded = _modules_after("import keras_er")
    assert not {"keras", "tensorflow", "torch", "jax"} & loaded


def test_masks_are_numpy_only():
    loaded = _modules_after("import keras_er.masks; keras_er.masks.layer_densities([(3, 4)], 0.5)")
    assert "keras" not in loaded and "keras_er.masks" in loaded


def test_cli_help_imports_no_keras():
    loaded = _modules_after("import keras_er.app.cli; keras_er.app.cli.parser()")
    assert "keras" not in loaded


def _choices(argument):
    train = cli.parser()._subparsers._group_actions[0].choices["train"]
    return next(action.choices for action in train._actions if argument in action.option_strings)


def test_a_registered_scheme_is_one_edit_away_from_the_cli_and_the_zoo():
    masks.register_scheme("fan_in", masks.proportional_scheme(lambda shape: 1 / math.prod(shape[:-1])))
    try:
        assert "fan_in" in _choices("--scheme") and "fan_in" in masks.SCHEMES
        densities = masks.layer_densities([(3, 3, 3, 16), (64, 10)], 0.5, "fan_in")
        assert sum(d * n for d, n in zip(densities, (432, 640))) == pytest.approx(0.5 * 1072)
        from keras_er import zoo

        assert "resnet20_fan_in" in zoo.list_models() and callable(zoo.resnet20_fan_in)
    finally:
        masks.unregister_scheme("fan_in")
    assert "fan_in" not in _choices("--scheme")


def test_a_registered_architecture_and_dataset_reach_the_cli():
    from keras_er.data import DatasetSpec
    from keras_er.data import register_dataset
    from keras_er.data import specs

    register_architecture("tiny_net", lambda input_shape, classes: None)
    register_dataset(DatasetSpec("tiny_set", (8, 8, 1), 3, (0.0,), (1.0,)))
    try:
        assert "tiny_net" in _choices("--model") and "tiny_set" in _choices("--dataset")
    finally:
        unregister_architecture("tiny_net")
        specs.unregister_dataset("tiny_set")


@pytest.mark.parametrize("name", ["Bad Name", "dense", "erk"])
def test_scheme_names_are_checked(name):
    with pytest.raises(ValueError, match="(?i)scheme"):
        masks.register_scheme(name, masks.proportional_scheme(lambda shape: 1.0))


def test_a_scheme_that_misses_its_budget_is_refused():
    masks.register_scheme("broken", lambda shapes, sizes, budget: [1.0] * len(shapes))
    try:
        with pytest.raises(ValueError, match="broken"):
            masks.layer_densities([(10, 10), (10, 10)], 0.5, "broken")
    finally:
        masks.unregister_scheme("broken")
