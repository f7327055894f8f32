"""The architecture registry: names -> Functional builders, each loaded on first use.

Built-in builders are named here with their module, so listing them (the
CLI's choices) imports no keras. `register_architecture` adds one more.
"""

from keras_er.lazy_registry import LazyRegistry
from keras_er.lazy_registry import check_new_entry

_BUILTIN = {
    **{name: "keras_er.models.resnet_cifar" for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")},
    **{name: "keras_er.models.resnet" for name in ("resnet18", "resnet34", "resnet50")},
    **{name: "keras_er.models.vgg" for name in ("vgg11", "vgg13", "vgg16", "vgg19")},
}
_REGISTERED = {}


def register_architecture(name, builder):
    """Add `builder(input_shape, classes) -> keras.Model` under `name`.

    The zoo then has `<name>_<scheme>` constructors and `keras-er train
    --model <name>` trains it.
    """
    check_new_entry("architecture", name, builder, {**_BUILTIN, **_REGISTERED}, "builder", lowercase=False)
    _REGISTERED[name] = builder


def unregister_architecture(name):
    """Remove an architecture added with `register_architecture`."""
    _REGISTERED.pop(name, None)


ARCHITECTURES = LazyRegistry("ARCHITECTURES", {name: (module, name) for name, module in _BUILTIN.items()}, _REGISTERED)
