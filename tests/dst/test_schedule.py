"""The cosine drop-fraction schedule and its argument checks (no keras)."""

import math
import os
import subprocess
import sys

import pytest

from keras_er.dst.schedule import check_arguments
from keras_er.dst.schedule import drop_fraction_at


def test_the_schedule_starts_at_the_drop_fraction_halves_midway_and_ends_at_zero():
    assert drop_fraction_at(0, 1000, 0.3, 0.75) == pytest.approx(0.3)
    assert drop_fraction_at(375, 1000, 0.3, 0.75) == pytest.approx(0.15)
    quarter = 0.3 / 2 * (1 + math.cos(math.pi / 4))
    assert drop_fraction_at(750 // 4, 1000, 0.3, 0.75) == pytest.approx(quarter, rel=1e-3)
    assert drop_fraction_at(749, 1000, 0.3, 0.75) > 0
    assert drop_fraction_at(750, 1000, 0.3, 0.75) == 0.0


def test_no_updates_after_end_fraction():
    assert all(drop_fraction_at(step, 100, 0.5, 0.5) == 0.0 for step in range(50, 200))
    assert drop_fraction_at(99, 100, 0.5, 1.0) > 0 and drop_fraction_at(100, 100, 0.5, 1.0) == 0.0


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 0.3, 0.75), "`update_every`"),
        ((2.5, 0.3, 0.75), "`update_every`"),
        ((True, 0.3, 0.75), "`update_every`"),
        ((10, 0.0, 0.75), "`drop_fraction`"),
        ((10, 1.0, 0.75), "`drop_fraction`"),
        ((10, "0.3", 0.75), "`drop_fraction`"),
        ((10, 0.3, 0.0), "`end_fraction`"),
        ((10, 0.3, 1.5), "`end_fraction`"),
        ((10, 0.3, float("nan")), "`end_fraction`"),
    ],
)
def test_bad_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        check_arguments(*args)


def test_bad_steps():
    with pytest.raises(ValueError, match="`step`"):
        drop_fraction_at(-1, 100)
    with pytest.raises(ValueError, match="`total_steps`"):
        drop_fraction_at(0, 0)


def test_method_names_and_the_numpy_modules_load_no_keras():
    code = (
        "import sys, keras_er.dst, keras_er.dst.schedule, keras_er.dst.updates; "
        "assert keras_er.dst.method_names()[:2] == ['set', 'rigl']; print('keras' in sys.modules)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
