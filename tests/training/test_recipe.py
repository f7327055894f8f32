"""Recipe: every numeric field is checked at construction (finite, in range), with one wording."""

import math

import numpy as np
import pytest

from keras_er.app import cli
from keras_er.training.recipe import Recipe

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "field, value, interval",
    [
        ("weight_decay", NAN, r"a finite number in \[0, inf\)"),
        ("weight_decay", INF, r"a finite number in \[0, inf\)"),
        ("weight_decay", -1e-4, r"a finite number in \[0, inf\)"),
        ("learning_rate", INF, r"a finite number in \(0, inf\)"),
        ("learning_rate", NAN, r"a finite number in \(0, inf\)"),
        ("learning_rate", 0.0, r"a finite number in \(0, inf\)"),
        ("momentum", NAN, r"a finite number in \[0, 1\)"),
        ("momentum", 1.0, r"a finite number in \[0, 1\)"),
        ("momentum", -0.1, r"a finite number in \[0, 1\)"),
        ("label_smoothing", NAN, r"a finite number in \[0, 1\)"),
        ("label_smoothing", -INF, r"a finite number in \[0, 1\)"),
        ("epochs", INF, r"an integer in \[1, inf\)"),
        ("epochs", 2.0, r"an integer in \[1, inf\)"),
        ("batch_size", 0, r"an integer in \[1, inf\)"),
        ("warmup_epochs", 0.5, r"an integer in \[0, epochs\) \(epochs = 30\)"),
        ("warmup_epochs", -1, r"an integer in \[0, epochs\) \(epochs = 30\)"),
        ("warmup_epochs", NAN, r"an integer in \[0, epochs\) \(epochs = 30\)"),
        ("seed", -1, r"an integer in \[0, inf\)"),
        ("seed", 1.5, r"an integer in \[0, inf\)"),
    ],
)
def test_bad_numbers_are_refused_at_construction_with_one_wording(field, value, interval):
    with pytest.raises(ValueError, match=rf"^`{field}` must be {interval}; got "):
        Recipe(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("learning_rate", "0.1"), ("weight_decay", None), ("momentum", True), ("seed", "0"), ("nesterov", "no")],
)
def test_values_that_are_not_numbers_are_type_errors_naming_the_field(field, value):
    with pytest.raises(TypeError, match=rf"^`{field}` must be "):
        Recipe(**{field: value})


def test_numpy_and_integer_values_become_plain_python_numbers():
    recipe = Recipe(epochs=np.int64(3), learning_rate=1, momentum=0, weight_decay=np.float32(0.5), seed=np.int32(2))
    assert recipe.to_dict() == {
        "epochs": 3,
        "batch_size": 128,
        "learning_rate": 1.0,
        "momentum": 0.0,
        "nesterov": True,
        "weight_decay": 0.5,
        "warmup_epochs": 1,
        "label_smoothing": 0.0,
        "seed": 2,
    }
    assert [type(recipe.to_dict()[k]) for k in ("epochs", "learning_rate", "momentum", "seed")] == [
        int,
        float,
        float,
        int,
    ]
    # Keras' SGD wants a float momentum: an integer 0 used to fail only when the optimizer was made.
    optimizer = recipe.optimizer(steps_per_epoch=10)
    assert optimizer.momentum == 0.0 and math.isclose(optimizer.weight_decay, 0.5)


@pytest.mark.parametrize(
    "flag, value, field",
    [
        ("--weight-decay", "nan", "weight_decay"),
        ("--weight-decay", "inf", "weight_decay"),
        ("--lr", "inf", "learning_rate"),
        ("--label-smoothing", "nan", "label_smoothing"),
        ("--seed", "-3", "seed"),
    ],
)
def test_the_cli_refuses_non_finite_recipe_values_before_the_run_folder_exists(flag, value, field, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "resnet20", "--epochs", "1", flag, value, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"`{field}` must be" in error and error.count("\n") == 1
    assert not out.exists()
