"""`keras-er export`'s id tags: a run trained otherwise than the zoo's entries never takes a published id."""

import pytest

from keras_er.app.publish import published_settings
from keras_er.app.publish import recipe_variant

ZOO_RECIPE = published_settings()["recipe"]
CONFIG = {"limit": None, "dst": None, "prune": None}


def test_the_zoo_recipe_is_the_one_every_published_entry_records():
    from keras_er.zoo import registry

    for entry in registry.load_index():
        recorded = {k: v for k, v in entry["recipe"].items() if k != "input_normalization"}
        assert recorded == {**ZOO_RECIPE, "seed": entry["seed"]}, entry["id"]
        assert recipe_variant(CONFIG, recorded) is None


@pytest.mark.parametrize(
    "change, tag",
    [
        ({"epochs": 1, "warmup_epochs": 0}, "e1_w0"),
        ({"batch_size": 64, "learning_rate": 0.05}, "b64_lr0.05"),
        ({"momentum": 0.8, "nesterov": False}, "m0.8_nonesterov"),
        ({"weight_decay": 0.0, "label_smoothing": 0.1}, "wd0_ls0.1"),
        ({"seed": 7}, None),  # the seed is in the id already
        ({"new_knob": 3}, "newknob3"),
    ],
)
def test_each_recipe_difference_is_named(change, tag):
    assert recipe_variant(CONFIG, {**ZOO_RECIPE, **change}) == tag


def test_limit_dst_and_pruning_settings_are_named_after_the_recipe():
    dst = {"method": "rigl", "update_every": 50, "drop_fraction": 0.3, "end_fraction": 0.5}
    prune = {"method": "synflow", "scope": "global", "iterations": 10}
    config = {"limit": 1000, "dst": dst, "prune": prune}
    assert recipe_variant(config, {**ZOO_RECIPE, "epochs": 2}) == "e2_limit1000_u50_end0.5_it10"
    default_dst = {**dst, "update_every": 100, "end_fraction": 0.75}
    assert recipe_variant({**CONFIG, "dst": default_dst}, ZOO_RECIPE) is None
