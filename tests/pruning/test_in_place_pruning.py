"""GradualPruning and imp (lottery tickets) on models masked in place: a subclassed model, an attention block."""

import numpy as np
import pytest

from keras_er.pruning import GradualPruning
from keras_er.pruning import cubic_density
from keras_er.pruning import imp
from tests.helpers import to_numpy
from tests.in_place_models import assert_masked_weights_are_zero
from tests.in_place_models import compile_for_classes
from tests.in_place_models import in_place_layers
from tests.in_place_models import in_place_model
from tests.in_place_models import kept
from tests.in_place_models import size

MODELS = ["subclassed", "attention"]


@pytest.mark.parametrize("name", MODELS)
def test_gradual_pruning_follows_the_cubic_schedule(name):
    model, x, y = in_place_model(name, density=1.0)
    compile_for_classes(model)
    pruning = GradualPruning(1.0, 0.25, begin_step=2, end_step=6, frequency=2)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[pruning])  # 8 steps
    assert [update["step"] for update in pruning.updates] == [2, 4, 6]
    total = size(model)
    for update in pruning.updates:
        target = cubic_density(update["step"], 1.0, 0.25, 2, 6)
        assert update["density"] * total == min(total, round(target * total))
    assert kept(model) == round(0.25 * total)
    assert all(to_numpy(layer.mask).mean() < 1 for layer in in_place_layers(model)), "Keras' own layers pruned"
    assert_masked_weights_are_zero(model)  # after 2 more steps of SGD with momentum


@pytest.mark.parametrize("name", MODELS)
def test_imp_halves_the_density_each_round_and_rewinds_the_survivors(name):
    model, x, y = in_place_model(name, density=1.0, seed=1)
    initial = [to_numpy(layer.kernel_variable) for layer in in_place_layers(model)]

    def fit_fn(model, train, round_index):
        compile_for_classes(model)  # a fresh optimizer each round
        return model.fit(*train, batch_size=8, epochs=1, verbose=0)

    records = imp(model, (x, y), rounds=2, density_per_round=0.5, fit_fn=fit_fn)
    total = size(model)
    assert [round(record["density"] * total) for record in records] == [round(0.5 * total), round(0.25 * total)]
    assert kept(model) == round(0.25 * total)
    for layer, start in zip(in_place_layers(model), initial):
        mask = to_numpy(layer.mask).astype(bool)
        kernel = to_numpy(layer.kernel_variable)
        np.testing.assert_array_equal(kernel[mask], start[mask], err_msg=layer.path)  # rewound to the start
        assert np.all(kernel[~mask] == 0), layer.path
    fit_fn(model, (x, y), 2)  # the ticket trains with its masked weights held at zero
    assert_masked_weights_are_zero(model)
