"""`sparsify`: any Functional or Sequential Keras model -> an ER-sparse copy."""

import inspect

import numpy as np
import keras

from keras_er.layers import MaskedLayer
from keras_er.model_masks import assign
from keras_er.replacements import REPLACEMENTS, select_layers
from keras_er.model_masks import leaf_layers
from keras_er.training.popup import freeze_normalization_affine
from keras_er.masks.schemes import validate_density
from keras_er.masks.schemes import validate_scheme

_BASE_LAYER_ARGS = {"name", "trainable", "dtype", "activity_regularizer", "autocast"}


def sparsify(
    model,
    density=0.1,
    scheme="erk",
    seed=0,
    method="exact",
    dense_layers=(),
    repair_flow=False,
    popup=False,
    popup_density=0.5,
    include=None,
    exclude=None,
):
    """Return a copy of `model` whose Dense, Conv and EinsumDense layers are ER-sparse.

    The copy has the same architecture and weights; each replaced layer's
    kernel is multiplied by a random Erdos-Renyi mask. Per-layer densities
    follow `scheme` so that the fraction of kept weights over all replaced
    layers is `density`. The input model is not modified.

    Args:
        model: a built Functional or Sequential `keras.Model`. Subclassed
            models cannot be cloned; build them from `keras_er.layers`
            instead and call `keras_er.masks.assign`.
        density: global fraction of weights kept, in (0, 1].
        scheme: one of `"erk"`, `"uniform"`, `"balanced"`, `"pyramidal"`.
        seed: mask seed; the same seed gives the same masks on every backend.
        method: `"exact"` (default; each layer keeps exactly round(density x size)
            weights, as the zoo does) or `"bernoulli"`.
        dense_layers: layers kept dense: `"first"`, `"last"`, indices into
            the replaced layers, or layer names.
        repair_flow: reconnect units left without inputs or outputs.
        popup: if True, kernels are frozen random weights N(0, 2/fan_in)
            drawn from per-layer seeds derived from `seed` (not copied from
            `model`: strong tickets live in random weights), and trainable
            scores select the top `popup_density` of each mask. The scale
            and offset of normalization layers are frozen too (as in
            edge-popup's non-affine BatchNorm), so only scores train; their
            moving statistics still update.
        popup_density: fraction of each layer's mask that popup keeps.
        include: layer names to sparsify (default: every Dense, Conv2D and
            DepthwiseConv2D).
        exclude: layer names to leave unchanged.

    Returns:
        A new `keras.Model`.

    Example:

    >>> inputs = keras.Input((32, 32, 3))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> x = keras.layers.GlobalAveragePooling2D()(x)
    >>> outputs = keras.layers.Dense(10)(x)
    >>> sparse = keras_er.sparsify(keras.Model(inputs, outputs), density=0.3)
    >>> round(keras_er.masks.summary(sparse, print_fn=None)["global_density"], 3)
    0.3
    """
    _check_model(model)
    validate_density(density)
    validate_scheme(scheme)
    validate_density(popup_density, "popup_density")
    selected = select_layers(model, include, exclude)
    seeds = _layer_seeds(seed, selected)

    def clone(layer):
        if layer.name in selected:
            return _masked_copy(layer, popup, popup_density, seeds[layer.name])
        return layer.__class__.from_config(layer.get_config())

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    _copy_weights(model, new_model)
    assign(new_model, density, scheme, seed, method, dense_layers, repair_flow)
    if popup:
        freeze_normalization_affine(new_model)
    return new_model


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    if not _is_functional_or_sequential(model):
        raise TypeError(
            f"`sparsify` needs a Functional or Sequential model; got the "
            f"subclassed model {type(model).__name__!r}, which Keras cannot "
            "clone. Build it from keras_er.layers (MaskedDense, MaskedConv2D, "
            "...) and draw masks with keras_er.masks.assign(model, ...)."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"Model '{model.name}' is not built; start it with keras.Input(...) (or call it on data) before `sparsify`."
        )


def _is_functional_or_sequential(model):
    if isinstance(model, keras.Sequential):
        return True
    # Functional is not public API; a model made by keras.Model(inputs,
    # outputs) is an instance of exactly that class.
    return type(model).__name__ == "Functional"


def _layer_seeds(seed, names):
    """Distinct, reproducible per-layer seeds for popup kernels and scores."""
    states = np.random.SeedSequence([int(seed), 7]).generate_state(len(names) + 1)
    return {name: int(state) % 2**31 for name, state in zip(names, states)}


def _masked_copy(layer, popup, popup_density, seed):
    masked_class = REPLACEMENTS[type(layer)]
    config = layer.get_config()
    accepted = _accepted_arguments(masked_class)
    for key in sorted(set(config) - accepted):
        if config[key] not in (None, False, 0, {}, ()):
            raise ValueError(
                f"Layer '{layer.name}' uses `{key}={config[key]!r}`, which {masked_class.__name__} does not support."
            )
        del config[key]
    config.update(popup=popup, popup_density=popup_density, seed=seed)
    if popup:  # None selects the seeded frozen kernels (and the scores are what trains)
        for key in config:
            if key.endswith("_initializer") and key != "bias_initializer":
                config[key] = None
    return masked_class(**config)


def _accepted_arguments(cls):
    names = set(_BASE_LAYER_ARGS)
    for klass in cls.__mro__:
        if klass is keras.layers.Layer:
            break
        names.update(inspect.signature(klass.__init__).parameters)
    return names - {"self", "kwargs"}


def _copy_weights(source, target):
    # Copies through numpy: on JAX an assigned array would be shared, and a
    # train step that donates one model's buffers would delete the other's.
    pairs = list(zip(leaf_layers(source), leaf_layers(target)))
    for old, new in pairs:
        if isinstance(new, MaskedLayer) and not isinstance(old, MaskedLayer):
            if not new.popup:  # popup keeps its seeded random frozen kernels
                source_kernel = getattr(old, f"{new.kernel_arg_prefix}_kernel", None)
                new.kernel.assign(keras.ops.convert_to_numpy(old.kernel if source_kernel is None else source_kernel))
                for weight in new.dense_kernels():
                    weight.assign(keras.ops.convert_to_numpy(getattr(old, weight.name)))
            if new.use_bias:
                new.bias.assign(keras.ops.convert_to_numpy(old.bias))
        else:
            new.set_weights(old.get_weights())
