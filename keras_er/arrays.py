"""Host copies of tensors and variables, and the NaN rule of every ranking."""

import numpy as np


def numpy_copy(value):
    """A numpy copy of a tensor or variable: on JAX a converted buffer may be donated to the next train step.

    Examples:
        >>> import keras
        >>> numpy_copy(keras.ops.ones((2,))).tolist()
        [1.0, 1.0]
    """
    import keras

    return np.array(keras.ops.convert_to_numpy(value), copy=True)


def nan_as_lowest(scores):
    """`scores` as float64 with NaN replaced by -inf: every keras_er ranking puts NaN last.

    Examples:
        >>> nan_as_lowest([1.0, float("nan")]).tolist()
        [1.0, -inf]
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)
