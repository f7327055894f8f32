"""Every extension point is one `Registry`: built-ins protected, duplicates refused, one error wording."""

import keras
import pytest

from keras_er import architectures
from keras_er import dst
from keras_er import masks
from keras_er import pruning
from keras_er import replacements
from keras_er.layers import MaskedDense
from keras_er.registry import Lazy
from keras_er.registry import Registry

EXTENSION_POINTS = [  # (registry, a built-in name, register, unregister, a valid new entry)
    (masks.SCHEMES, "erk", masks.register_scheme, masks.unregister_scheme, masks.proportional_scheme(len)),
    (
        architectures.ARCHITECTURES,
        "resnet20",
        architectures.register_architecture,
        architectures.unregister_architecture,
        lambda input_shape, classes: None,
    ),
    (dst.METHODS, "rigl", dst.register_method, dst.unregister_method, lambda **kwargs: None),
    (pruning.METHODS, "magnitude", pruning.register_method, pruning.unregister_method, lambda context: None),
    (
        replacements.REPLACEMENTS,
        keras.layers.Dense,
        replacements.register_replacement,
        replacements.unregister_replacement,
        MaskedDense,
    ),
]


@pytest.mark.parametrize("registry, builtin, register, unregister, entry", EXTENSION_POINTS)
def test_built_ins_can_be_neither_replaced_nor_removed(registry, builtin, register, unregister, entry):
    before = dict(registry)
    with pytest.raises(ValueError, match="exists already; choose another name"):
        register(builtin, entry)
    with pytest.raises(ValueError, match="is built in and cannot be unregistered"):
        unregister(builtin)
    assert dict(registry) == before and registry.is_builtin(builtin)


@pytest.mark.parametrize("registry, builtin, register, unregister, entry", EXTENSION_POINTS)
def test_a_registered_entry_is_listed_and_removed_once(registry, builtin, register, unregister, entry):
    name = type("Custom", (keras.layers.Dense,), {}) if isinstance(builtin, type) else "custom_entry"
    register(name, entry)
    try:
        assert name in registry and list(registry)[-1] is name and registry[name] is entry
        with pytest.raises(ValueError, match="exists already"):
            register(name, entry)
    finally:
        unregister(name)
    assert name not in registry
    with pytest.raises(ValueError, match="No registered .* to remove"):
        unregister(name)


def test_registries_are_read_only_mappings():
    with pytest.raises(TypeError):
        masks.SCHEMES["mine"] = masks.proportional_scheme(len)
    with pytest.raises(TypeError):
        del pruning.METHODS["magnitude"]


@pytest.mark.parametrize("name", ["Upper", "has space", 3])
def test_bad_names_are_refused_with_the_kind(name):
    registry = Registry("widget")
    with pytest.raises(ValueError, match="A widget name must be a lower-case identifier"):
        registry.register(name, len)
    with pytest.raises(TypeError, match="A widget must be callable"):
        registry.register("fine", 3)
    assert len(registry) == 0


def test_lookup_names_the_argument_and_every_choice():
    registry = Registry("widget", {"a": len, "b": Lazy("math", "sqrt")})
    with pytest.raises(ValueError, match=r"Unknown widget 'c' for `kind`; expected one of: a, b\.$"):
        registry.lookup("c", "kind")
    assert registry.lookup("b", "kind")(9) == 3.0  # a Lazy built-in loads on first use
    assert ["x"] not in registry  # an unhashable name is simply absent


def test_the_reserved_scheme_name_dense_cannot_be_registered():
    with pytest.raises(ValueError, match="'dense' exists already"):
        masks.register_scheme("dense", masks.proportional_scheme(len))
