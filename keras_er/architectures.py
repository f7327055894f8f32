"""The architecture registry: names -> Functional builders, each loaded on first use.

Built-in builders are named here with their module, so listing them (the
CLI's choices) imports no keras. `register_architecture` adds one more.
"""

from keras_er.registry import Lazy
from keras_er.registry import Registry
from keras_er.registry import identifier_key

_BUILTIN = {
    **{name: "keras_er.models.cifar_resnet" for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")},
    **{name: "keras_er.models.resnet_blocks" for name in ("resnet18", "resnet34", "resnet50")},
    **{name: "keras_er.models.vgg_bn" for name in ("vgg11", "vgg13", "vgg16", "vgg19")},
}

ARCHITECTURES = Registry(
    "architecture",
    {name: Lazy(module, name) for name, module in _BUILTIN.items()},
    check_key=lambda kind, name: identifier_key(kind, name, lowercase=False),
)
"""Architecture name -> `builder(input_shape, classes) -> keras.Model`."""


def register_architecture(name, builder):
    """Add `builder(input_shape, classes) -> keras.Model` under `name`.

    The zoo then has `<name>_<scheme>` constructors and `keras-er train
    --model <name>` trains it.
    """
    ARCHITECTURES.register(name, builder)


def unregister_architecture(name):
    """Remove an architecture added with `register_architecture` (built-in ones stay)."""
    ARCHITECTURES.unregister(name)
