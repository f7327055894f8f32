"""RigL and SET inside `fit` on models masked in place: a subclassed model, an attention block."""

import pytest

from keras_er import dst
from tests.helpers import to_numpy
from tests.in_place_models import assert_masked_weights_are_zero
from tests.in_place_models import compile_for_classes
from tests.in_place_models import in_place_layers
from tests.in_place_models import in_place_model


@pytest.mark.parametrize("method", ["rigl", "set"])
@pytest.mark.parametrize("name", ["subclassed", "attention"])
def test_dst_moves_weights_of_keras_layers_and_keeps_each_layers_count(name, method):
    model, x, y = in_place_model(name, density=0.3)
    compile_for_classes(model)
    layers = in_place_layers(model)
    before = [to_numpy(layer.mask) for layer in layers]
    kwargs = {"update_every": 2, "drop_fraction": 0.5, "seed": 3}
    callback = dst.RigL(data=(x[:8], y[:8]), **kwargs) if method == "rigl" else dst.SET(**kwargs)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])  # 8 steps: updates at 2, 4 (< 0.75 x 8)
    assert [record["step"] for record in callback.history] == [2, 4]
    after = [to_numpy(layer.mask) for layer in layers]
    assert any((a != b).any() for a, b in zip(before, after)), "weights moved"
    assert [int(a.sum()) for a in before] == [int(b.sum()) for b in after], "each layer keeps its count"
    assert_masked_weights_are_zero(model)
