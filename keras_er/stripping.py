"""`strip`: a sparse model -> the same network in plain Keras layers, masks folded into the weights."""

import inspect

import keras
import numpy as np
from keras import ops

from keras_er.layers import MaskedLayer
from keras_er.layers import in_place
from keras_er.layers import pixels
from keras_er.masks.model import all_layers
from keras_er.masks.model import require_masked_layers
from keras_er.replacements import REPLACEMENTS

_MASK_ARGUMENTS = ("density", "seed", "popup", "popup_density")


def strip(model):
    """Return a copy of the sparse `model` made of plain Keras layers, masks folded into the weights.

    Every masked weight becomes the weight the forward pass used (`kernel *
    mask`, popup's top-k included): masked entries are exact zeros. The copy
    has no keras_er class, so its `.keras` file loads where keras_er is not
    installed, with the same outputs (a keras_er model keeps its raw-pixel
    front, without the guard against normalised input). `model` is not modified. As
    `tfmot.sparsity.keras.strip_pruning` and `torch.nn.utils.prune.remove`.

    A Functional or Sequential model is cloned; any other model is rebuilt
    from its config (`from_config(get_config())`, as `.keras` loading does),
    so a subclassed model needs a working `get_config`.

    Examples:
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
        >>> plain = keras_er.strip(keras_er.sparsify(model, density=0.5))
        >>> type(plain.layers[-1]).__name__, float(keras.ops.mean(plain.layers[-1].kernel == 0))
        ('Dense', 0.5)
    """
    require_masked_layers(model)
    if pixels.takes_raw_pixels(model):  # keras_er's raw-pixel front stays, in Keras' own layers (no guard)
        config = model.get_layer(pixels.FRONT).get_config()
        std = [float(v) ** 0.5 for v in np.ravel(config["variance"])]
        network = strip(pixels.without_preprocessing(model))
        return pixels.with_raw_pixel_front(network, np.ravel(config["mean"]).tolist(), std, guard=False)
    if in_place.is_functional_or_sequential(model):
        plain = keras.models.clone_model(model, clone_function=_plain_copy, recursive=True)
    else:
        plain = _rebuilt(model)
    old, new = _weighted_layers(model), _weighted_layers(plain)
    if len(old) != len(new):
        raise ValueError(f"Model '{model.name}' rebuilt from its config has a different structure; cannot strip it.")
    for source, target in zip(old, new):
        _copy_plain_weights(source, target)
    return plain


def _plain_copy(layer):
    if isinstance(layer, MaskedLayer):
        plain_class = _plain_class(type(layer))
        config = {k: v for k, v in layer.get_config().items() if k not in _MASK_ARGUMENTS}
        for key, value in config.items():
            if key.endswith("_initializer") and value is None:
                config[key] = "glorot_uniform"
        return plain_class.from_config(_accepted_config(layer, plain_class, config))
    return in_place.keras_class(layer).from_config(in_place.plain_config(layer))


def _plain_class(masked_class):
    """The layer class `masked_class` replaces: Keras' own first, else one registered with `register_replacement`."""
    registered = [keras_class for keras_class, replacement in REPLACEMENTS.items() if replacement is masked_class]
    keras_own = [cls for cls in registered if cls.__module__.split(".")[0] == "keras"]
    if keras_own or registered:
        return (keras_own or registered)[0]
    raise TypeError(
        f"keras_er has no plain layer for {masked_class.__name__}: register the layer it replaces with "
        "keras_er.replacements.register_replacement(PlainClass, MaskedClass)."
    )


def _accepted_config(layer, plain_class, config):
    """`config` without the MaskedLayer arguments a user's plain class does not take, if they are at their defaults.

    A registered layer of a user's own need not take `activation`, `kernel_regularizer`, ...: left at
    what MaskedLayer does without them (initializers do not matter: the weights are copied), they are
    dropped; set to anything else they would be lost, so that is an error.
    """
    accepted = _init_arguments(plain_class)
    if accepted is None:
        return config
    defaults = {"activation": ("linear", None)}
    dropped = {}
    for key in [k for k in config if k not in accepted]:
        value = config.pop(key)
        if not (key.endswith("_initializer") or value is None or value in defaults.get(key, ())):
            dropped[key] = value
    if dropped:
        raise ValueError(
            f"strip: layer '{layer.name}' has {dropped}, which {plain_class.__name__} does not take; "
            "its plain copy would lose them."
        )
    return config


def _init_arguments(cls):
    """The config keys `cls.from_config` takes; None when it takes whatever a masked layer writes (a Keras layer)."""
    names = {"name", "trainable", "dtype", "autocast", "activity_regularizer"}
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "keras":
            return names if klass is keras.layers.Layer else None
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names.update(p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return names


def _rebuilt(model):
    try:
        plain = in_place.keras_class(model).from_config(in_place.plain_config(model))
        plain.build_from_config(model.get_build_config())
    except Exception as error:
        raise ValueError(
            f"strip rebuilds a subclassed model from its config; {in_place.keras_class(model).__name__}.from_config("
            f"get_config()) failed ({type(error).__name__}: {error}). Give the class a working get_config."
        ) from None
    if not plain.built:
        raise ValueError(
            f"{type(model).__name__} rebuilt from its config is not built: give it a `build(input_shape)` that "
            "builds its layers (Keras needs the same to load it from a .keras file)."
        )
    return plain


def _weighted_layers(model):
    return [layer for layer in all_layers(model) if in_place.own_weights(layer)]


def _copy_plain_weights(source, target):
    for weight in in_place.own_weights(target):
        weight.assign(ops.convert_to_numpy(_plain_value(source, weight.name)))


def _plain_value(layer, name):
    """The value of the weight `name` of `layer`'s plain Keras twin: the masked weight folded."""
    if isinstance(layer, MaskedLayer) and name in ("kernel", f"{layer.kernel_arg_prefix}_kernel"):
        return layer.effective_kernel()
    if isinstance(layer, in_place.InPlaceMasked) and name == layer.kernel_variable.name:
        return layer.effective_kernel()
    for weight in in_place.own_weights(layer):
        if weight.name == name and weight.name not in ("mask", "scores"):
            return weight.value
    raise ValueError(f"strip: layer '{layer.name}' has no weight {name!r} for its plain Keras copy.")
