"""`sparsify`: any built Keras model -> ER-sparse (a masked copy of a Functional/Sequential model, else in place)."""

import inspect
import math

import keras
import numpy as np

from keras_er.layers import MaskedLayer
from keras_er.layers.in_place import hold_masks
from keras_er.layers.in_place import is_functional_or_sequential
from keras_er.layers.in_place import mask_in_place
from keras_er.layers.in_place import maskable_in_place
from keras_er.masks.model import all_layers
from keras_er.masks.model import assign
from keras_er.masks.model import dense_layer_indices
from keras_er.masks.model import is_masked
from keras_er.masks.model import leaf_layers
from keras_er.masks.model import masked_layers
from keras_er.masks.n_m import validate_n_m
from keras_er.masks.n_m_model import assign_n_m
from keras_er.masks.n_m_model import n_m_dense_reasons
from keras_er.masks.sampling import SAMPLING_METHODS
from keras_er.masks.schemes import validate_density
from keras_er.masks.schemes import validate_scheme
from keras_er.replacements import REPLACEMENTS
from keras_er.replacements import check_selectors
from keras_er.replacements import chosen
from keras_er.replacements import maskable
from keras_er.replacements import replaceable_names
from keras_er.replacements import warn_about_dense_kernels
from keras_er.training.popup import freeze_normalization_affine

_BASE_LAYER_ARGS = {"name", "trainable", "dtype", "activity_regularizer", "autocast"}


def sparsify(
    model,
    density=None,
    scheme=None,
    seed=0,
    method="exact",
    dense_layers=(),
    repair_flow=False,
    popup=False,
    popup_density=0.5,
    include=None,
    exclude=None,
    n_m=None,
    in_place=False,
):
    """Make every Dense, EinsumDense, Conv and Embedding weight of `model` ER-sparse.

    Each masked weight is multiplied by a random Erdos-Renyi 0/1 mask; per-layer
    densities follow `scheme` so that the fraction of kept weights over all
    masked layers is `density` (a 3-D EinsumDense kernel and an Embedding's
    (vocab, dim) table enter the schemes with their real shapes).

    What is returned and what changes:

    - A Functional or Sequential model is copied (Keras' `clone_model`): its
      Dense/Conv/EinsumDense layers become keras_er masked layers, and the
      kernels Keras cannot reach by cloning (inside MultiHeadAttention, a
      keras-hub block, a user's layer; an Embedding) are masked in place in
      the copy. `model` itself is not modified. `in_place=True` masks it in
      place instead, like any other model (for a model Keras cannot copy,
      e.g. one holding a layer whose config does not rebuild it).
    - Any other built model (subclassed, a keras-hub backbone or task) is
      masked **in place** and returned: each Dense/EinsumDense/Conv/Embedding
      anywhere inside it keeps its object and its behaviour, and reads its
      weight times a uint8 mask (see `keras_er.layers.in_place`). Its compiled
      train/predict functions are reset so the next `fit` uses the masks.
    - Whatever Keras rebuilds from a config and holds layers masked in place
      (the model masked in place; in a copy, each top-level layer such as a
      MultiHeadAttention or a keras-hub backbone) becomes a mask holder: a
      subclass of its class that saves which layers inside it are masked.

    Saving: `model.save` writes every mask as uint8, and
    `keras.saving.load_model` (after `import keras_er.layers`) gives back the
    same masks and outputs, for copies and models masked in place alike;
    `keras_er.strip` gives plain Keras layers that load without keras_er.

    Weights of other layers (a depthwise kernel, a keras-hub position
    embedding) stay dense: one warning names them, and `masks.summary` counts
    them as kept.

    With `n_m=(N, M)` the masks are N:M structured instead (the pattern
    sparse tensor cores accelerate): in every group of `M` consecutive
    weights along a kernel's reduction axis (`keras_er.masks.reduction_axis`:
    a Dense kernel's inputs, a convolution's input channels, the last summed
    axis of an EinsumDense), `N` are kept at random from `seed`. Kernels with
    no reduction axis (DepthwiseConv2D, Embedding) or one that is not a
    multiple of `M` keep all-ones masks: the warning names them too, and
    `masks.summary` counts them as kept. Each masked layer records its
    pattern (`layer.n_m`), so `pruning.prune(n_m=)` and SET/RigL keep it.

    Args:
        model: a built `keras.Model` (any kind).
        density: global fraction of weights kept, in (0, 1]; default 0.1. With
            `n_m` it is `N / M` in every layer: leave it None (or pass `N / M`).
        scheme: one of `"erk"` (the default), `"uniform"`, `"balanced"`,
            `"pyramidal"` (or a registered scheme). With `n_m` every layer
            keeps `N / M`: None or `"uniform"` only.
        seed: mask seed; the same seed gives the same masks on every backend.
        method: `"exact"` (default; each layer keeps exactly round(density x size)
            weights, as the zoo does) or `"bernoulli"`.
        dense_layers: layers kept dense: `"first"`, `"last"`, indices into
            the masked layers, or layer names.
        repair_flow: reconnect units left without inputs or outputs.
        popup: if True, kernels are frozen random weights N(0, 2/fan_in)
            drawn from per-layer seeds derived from `seed` (not copied from
            `model`: strong tickets live in random weights), and trainable
            scores select the top `popup_density` of each mask. The scale
            and offset of normalization layers are frozen too (as in
            edge-popup's non-affine BatchNorm), so only scores train. Needs
            keras_er's masked layers: refused for layers masked in place.
        popup_density: fraction of each layer's mask that popup keeps.
        include: what to mask (default: everything maskable): layer names,
            paths (`"encoder/attention/query"`), glob patterns on either
            (`"*attention*"`) or layer classes (`keras.layers.EinsumDense`).
        exclude: what to leave dense, in the same forms.
        n_m: None (Erdos-Renyi masks) or `(N, M)`, ints with `1 <= N < M`
            (`(2, 4)`: 2:4 sparsity). Not with `popup`, `repair_flow` or
            `method="bernoulli"`, which would break the pattern.
        in_place: mask a Functional or Sequential model in place too (no
            copy; keras_er's masked layers and `popup` need the copy).

    Returns:
        The sparse `keras.Model`: a copy (Functional, Sequential) or `model` itself.

    Examples:
        >>> inputs = keras.Input((32, 32, 3))
        >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
        >>> x = keras.layers.GlobalAveragePooling2D()(x)
        >>> outputs = keras.layers.Dense(10)(x)
        >>> sparse = keras_er.sparsify(keras.Model(inputs, outputs), density=0.3)
        >>> round(keras_er.masks.summary(sparse, print_fn=None)["global_density"], 3)
        0.3

        N:M (here 2:4; the first Conv2D's 3 input channels are not a multiple of 4, so it stays dense):

        >>> inputs = keras.Input((16, 16, 3))
        >>> x = keras.layers.Conv2D(8, 3)(inputs)
        >>> x = keras.layers.Conv2D(8, 3)(x)
        >>> outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     sparse = keras_er.sparsify(keras.Model(inputs, outputs), n_m=(2, 4), seed=0)
        >>> [layer.n_m for layer in keras_er.masks.masked_layers(sparse)]
        [None, (2, 4), (2, 4)]
        >>> any("(3, 3, 3, 8) is not a multiple of 4" in str(w.message) for w in caught)
        True
    """
    _check_model(model)
    n_m, density, scheme = _resolve_pattern(n_m, density, scheme, method, repair_flow, popup)
    validate_density(popup_density, "popup_density")
    candidates = [layer for layer in all_layers(model) if maskable(layer) or maskable_in_place(layer)]
    check_selectors(candidates, include, exclude)
    if not isinstance(in_place, bool):
        raise TypeError(f"`in_place` must be True or False; got {in_place!r}.")
    if is_functional_or_sequential(model) and not in_place:
        replaced = [layer.name for layer in leaf_layers(model) if maskable(layer) and chosen(layer, include, exclude)]
        model = _clone_with_masked_layers(model, replaced, popup, popup_density, seed)
    targets = [layer for layer in all_layers(model) if maskable_in_place(layer) and chosen(layer, include, exclude)]
    _check_in_place_targets(targets, popup)
    if not targets and not masked_layers(model):
        raise ValueError(
            f"Model '{model.name}' has no layers to sparsify after `include`/`exclude`: sparsify masks "
            f"{replaceable_names()} and Keras' Embedding/EinsumDense/Dense/Conv layers anywhere inside a model."
        )
    _check_dense_layers(model, targets, dense_layers)
    for layer in targets:
        mask_in_place(layer)
    if targets:
        hold_masks(model)
        _reset_compiled_functions(model)
    if n_m is None:
        warn_about_dense_kernels(model)
        assign(model, density, scheme, seed, method, dense_layers, repair_flow)
    else:
        layers = masked_layers(model)
        dense = set(dense_layer_indices(dense_layers, layers))
        reasons = n_m_dense_reasons([layer for i, layer in enumerate(layers) if i not in dense], n_m)
        warn_about_dense_kernels(model, reasons)
        assign_n_m(model, n_m, seed, dense_layers)
    if popup:
        freeze_normalization_affine(model)
    return model


def _resolve_pattern(n_m, density, scheme, method, repair_flow, popup):
    """`(n_m, density, scheme)` checked: ER defaults without `n_m`; with it, only what agrees with N:M."""
    if n_m is None:
        density = validate_density(0.1 if density is None else density)
        return None, density, validate_scheme("erk" if scheme is None else scheme)
    n, m = validate_n_m(n_m)
    if method not in SAMPLING_METHODS:
        raise ValueError(f"Unknown `method` {method!r}; expected one of {', '.join(SAMPLING_METHODS)}.")
    if density is not None and not math.isclose(validate_density(density), n / m, rel_tol=1e-9):
        raise ValueError(
            f"`density`={density} conflicts with `n_m`=({n}, {m}), which keeps {n / m:g} of every layer: "
            "leave `density` None."
        )
    if scheme is not None and validate_scheme(scheme) != "uniform":
        raise ValueError(
            f"`scheme`={scheme!r} does not apply with `n_m`: every layer keeps {n} of every {m} weights "
            "(a uniform density). Leave `scheme` None."
        )
    for name, value, compatible in (("method", method, "exact"), ("repair_flow", repair_flow, False)):
        if value != compatible:
            raise ValueError(f"`{name}`={value!r} would break the {n}:{m} pattern; it is not supported with `n_m`.")
    if popup:
        raise ValueError(f"`popup=True` picks weights by score and would break the {n}:{m} pattern; not with `n_m`.")
    return (n, m), n / m, "uniform"


def _clone_with_masked_layers(model, replaced, popup, popup_density, seed):
    seeds = _layer_seeds(seed, replaced)

    def clone(layer):
        if layer.name in replaced:
            return _masked_copy(layer, popup, popup_density, seeds[layer.name])
        try:
            return layer.__class__.from_config(layer.get_config())
        except Exception as error:  # a layer's own from_config may raise anything
            raise ValueError(
                f"sparsify copies a Functional/Sequential model, but Keras cannot rebuild its layer "
                f"'{layer.name}' ({type(layer).__name__}) from its config "
                f"({type(error).__name__}: {str(error)[:160]}...). "
                "Pass `in_place=True` to mask the model in place instead (it is then changed and returned)."
            ) from None

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    _copy_weights(model, new_model)
    return new_model


def _check_in_place_targets(targets, popup):
    if popup and targets:
        names = [layer.path for layer in targets]
        raise ValueError(
            f"`popup=True` needs keras_er's masked layers, but these can only be masked in place: {names}. "
            "Leave them dense with `exclude=` (or build the model from keras_er.layers)."
        )


def _check_dense_layers(model, targets, dense_layers):
    """Validate `dense_layers` against the masked layers-to-be before anything is masked in place."""
    chosen_ids = {id(layer) for layer in targets}
    layers = [layer for layer in all_layers(model) if is_masked(layer) or id(layer) in chosen_ids]
    dense_layer_indices(dense_layers, layers)


def _reset_compiled_functions(model):
    for holder in [model] + [layer for layer in all_layers(model) if isinstance(layer, keras.Model)]:
        for name in ("train_function", "test_function", "predict_function"):
            if getattr(holder, name, None) is not None:
                setattr(holder, name, None)


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built; call it on data (or start it with keras.Input) before `sparsify`."
        )
    if is_functional_or_sequential(model) and not model.inputs:
        raise ValueError(f"Model '{model.name}' has no inputs; start it with keras.Input(...) before `sparsify`.")


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
