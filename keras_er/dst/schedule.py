"""The drop-fraction schedule of dynamic sparse training (numpy-free, keras-free).

Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets
Winners" (ICML 2020), eq. 1: the fraction of active weights moved at step t
decays on a cosine from `drop_fraction` to 0 at `end_fraction * total_steps`;
after that the masks stay as they are.
"""

import math
import numbers

from keras_er import arguments


def drop_fraction_at(step, total_steps, drop_fraction=0.3, end_fraction=0.75):
    """`drop_fraction / 2 * (1 + cos(pi * step / (end_fraction * total_steps)))`, or 0 from the end on.

    Examples:
        >>> drop_fraction_at(0, 1000)
        0.3
        >>> round(drop_fraction_at(375, 1000), 6)  # half-way to the end: half the fraction
        0.15
        >>> drop_fraction_at(750, 1000), drop_fraction_at(900, 1000)
        (0.0, 0.0)
    """
    check_arguments(1, drop_fraction, end_fraction)
    arguments.integer(step, "step")
    total_steps = check_total_steps(total_steps)
    end = end_fraction * total_steps
    if step >= end:
        return 0.0
    return drop_fraction / 2 * (1 + math.cos(math.pi * step / end))


def check_arguments(update_every, drop_fraction, end_fraction):
    """Refuse schedule arguments out of range, naming the argument."""
    arguments.integer(update_every, "update_every", minimum=1, unit=" (optimizer steps)")
    if not _is_real(drop_fraction) or not 0 < drop_fraction < 1:
        raise ValueError(f"`drop_fraction` must be a number with 0 < drop_fraction < 1; got {drop_fraction!r}.")
    if not _is_real(end_fraction) or not 0 < end_fraction <= 1:
        raise ValueError(f"`end_fraction` must be a number with 0 < end_fraction <= 1; got {end_fraction!r}.")


def check_total_steps(total_steps):
    return arguments.integer(total_steps, "total_steps", minimum=1)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
