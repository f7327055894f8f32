"""Checks of user-given arguments, with one wording for each kind of mistake.

Plain Python (no numpy, no keras): the layers, masks, data and training code all validate through here.
"""

import numbers


def integer(value, name, minimum=0, allow_none=False, unit=""):
    """`value` as an `int`; a `ValueError` naming `name` unless it is an integer >= `minimum`.

    Booleans are refused (`True` is not a count). `unit` says what is counted,
    e.g. `" (optimizer steps)"`.

    Examples:
        >>> integer(3, "epochs", minimum=1)
        3
        >>> integer(None, "limit", minimum=1, allow_none=True) is None
        True
        >>> integer(-1, "seed")
        Traceback (most recent call last):
        ...
        ValueError: `seed` must be a non-negative integer; got -1.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        subject = name if name.startswith("-") else f"`{name}`"  # a command-line flag, or a Python argument
        raise ValueError(f"{subject} must be {kind}{unit}{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def seed(value, name="seed", allow_none=False):
    """A random seed: a non-negative integer (or None where `allow_none`)."""
    return integer(value, name, minimum=0, allow_none=allow_none)
