"""The training recipe of the paper, as data, and the optimizer it makes."""

import dataclasses
import math
import numbers

import keras

# Weight decay applies to kernels, and to popup scores (as in edge-popup),
# not to biases or BatchNorm; masks are not trainable.
NO_WEIGHT_DECAY = ("bias", "gamma", "beta")


@dataclasses.dataclass
class Recipe:
    """SGD + nesterov momentum, weight decay on kernels (scores in popup), cosine decay with warm-up.

    Defaults are the paper's CIFAR recipe, shortened to 30 epochs.
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self):
        # Checked at construction (the CLI builds the recipe before it writes anything): a NaN or infinite
        # learning rate, momentum or weight decay trains a model full of NaN, masked positions included.
        self.epochs = _checked("epochs", self.epochs, int, 1)
        self.batch_size = _checked("batch_size", self.batch_size, int, 1)
        self.learning_rate = _checked("learning_rate", self.learning_rate, float, 0, low_open=True)
        self.momentum = _checked("momentum", self.momentum, float, 0, 1)
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"`nesterov` must be True or False; got {self.nesterov!r}.")
        self.weight_decay = _checked("weight_decay", self.weight_decay, float, 0)
        self.warmup_epochs = _checked("warmup_epochs", self.warmup_epochs, int, 0, self.epochs, high_text="epochs")
        self.label_smoothing = _checked("label_smoothing", self.label_smoothing, float, 0, 1)
        self.seed = _checked("seed", self.seed, int, 0)

    def schedule(self, steps_per_epoch):
        """Linear warm-up from 0 to `learning_rate`, then cosine decay to 0."""
        warmup = self.warmup_epochs * steps_per_epoch
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else self.learning_rate,
            decay_steps=self.epochs * steps_per_epoch - warmup,
            warmup_target=self.learning_rate if warmup else None,
            warmup_steps=warmup,
        )

    def optimizer(self, steps_per_epoch):
        """SGD with this recipe's schedule for `steps_per_epoch` steps per epoch."""
        optimizer = keras.optimizers.SGD(
            self.schedule(steps_per_epoch),
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay or None,
        )
        optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
        return optimizer

    def loss(self):
        """Cross-entropy on integer labels and logits, with optional label smoothing."""
        if not self.label_smoothing:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        smoothing = self.label_smoothing

        # SparseCategoricalCrossentropy has no label_smoothing: go through one-hot.
        def smoothed_crossentropy(y_true, y_pred):
            labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
            one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1])
            return keras.losses.categorical_crossentropy(one_hot, y_pred, from_logits=True, label_smoothing=smoothing)

        return smoothed_crossentropy

    def to_dict(self):
        return dataclasses.asdict(self)


def _checked(name, value, kind, low, high=math.inf, *, low_open=False, high_text=None):
    """`value` as a `kind` (int or float) in `[low, high)` (`(low, high)` with `low_open`), or a clear error.

    One wording for every field: "`name` must be a finite number (an integer) in [low, high); got value."
    Anything that is not a real number (a string, None, a bool) is a TypeError; a number outside the range,
    a non-integer for an integer field, NaN and +-inf are ValueErrors.
    """
    interval = f"{'(' if low_open else '['}{low}, {high_text or high})"
    if high_text is not None:
        interval += f" ({high_text} = {high})"
    expected = "an integer" if kind is int else "a finite number"
    message = f"`{name}` must be {expected} in {interval}; got {value!r}."
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    if kind is int and not isinstance(value, numbers.Integral):
        raise ValueError(message)
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise ValueError(message)
    if value < low or (low_open and value == low) or value >= high:
        raise ValueError(message)
    return kind(value)
