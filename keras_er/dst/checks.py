"""What a DST callback refuses before it moves anything: its `data` argument, and models it cannot update."""

from keras_er.masks.model import masked_layers


def check_data(data):
    """`data` as a DST callback keeps it: None, an `(x, y)` tuple, or an indexable batch source."""
    if data is None:
        return None
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"`data` as a tuple must be one `(x, y)` batch; got {len(data)} items.")
        return tuple(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        if len(data) < 1:
            raise ValueError("`data` has no batches.")
        return data
    raise ValueError(
        "`data` must be an `(x, y)` batch or an indexable batch source (keras_er.data.ImageBatches, "
        f"keras.utils.PyDataset); got {type(data).__name__}."
    )


def checked_layers(model, method):
    """The masked layers of `model` that DST callback `method` (its class name, for messages) may update."""
    if model is None:
        raise ValueError(f"{method} has no model; pass it to `fit` or call `set_model(model)`.")
    layers = masked_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no keras_er masked layers for {method} to update; "
            "build it with keras_er.layers, keras_er.zoo.build or keras_er.sparsify."
        )
    popup = [layer.name for layer in layers if layer.popup]
    if popup:
        raise ValueError(
            f"{method} does not support popup layers ({popup}): popup trains scores on a frozen "
            "kernel, dynamic sparse training moves trained weights. Build the model with popup=False."
        )
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(f"Model '{model.name}' is not built (layers {unbuilt}); build it before training.")
    return layers
