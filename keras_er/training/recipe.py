"""The training recipe of the paper, as data, and the optimizer it makes."""

import dataclasses

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
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"`warmup_epochs` must be in [0, epochs); got {self.warmup_epochs!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1); got {self.label_smoothing!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0; got {self.learning_rate!r}.")

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
