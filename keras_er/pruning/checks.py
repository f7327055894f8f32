"""Checks shared by the score functions: the data they get and the scores they return."""

from keras_er.pruning import select

# How a method's non-finite scores are reported: (the message's subject, what to check).
_SCORE_MESSAGES = {
    "magnitude": ("Magnitude scores (|w|)", "the kernel has non-finite weights (did training diverge?)"),
    "snip": ("SNIP scores", "check the data batch (`data`) and the loss"),
    "synflow": (
        "SynFlow scores",
        "the network's synaptic flow overflowed float32; prune fewer layers at a time or use another method",
    ),
}


def check_scores(method, scores, names):
    """Refuse `method`'s scores (one array per layer named in `names`) if any is NaN or infinite."""
    what, hint = _SCORE_MESSAGES.get(method, (f"{method!r} pruning scores", "check the method's score function"))
    select.check_finite_scores(scores, names, what, hint)


def first_batch(data):
    """`(x, y)` from an `(x, y)` tuple of arrays or from the first batch of a `keras.utils.PyDataset`."""
    import keras

    check_data_kind(data)
    if isinstance(data, keras.utils.PyDataset):
        data = data[0]
        check_data_kind(data)
    return data[0], data[1]


def check_data_kind(data):
    import keras

    if isinstance(data, keras.utils.PyDataset):
        if len(data) == 0:
            raise ValueError("`data` is an empty PyDataset.")
        return
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            "`data` must be an (x, y) tuple of arrays or a keras.utils.PyDataset (keras_er.data.ImageBatches); "
            f"got {type(data).__name__}."
        )
