"""BatchNormalization: Keras' layer, with TensorFlow's fused kernel for its training steps.

Keras 3 normalises with separate moment, subtract, scale and shift ops on every backend. On TensorFlow one
fused op (oneDNN's batch norm on a CPU) does the same in one pass forward and one backward, which makes a
ResNet20 train step faster (`python -m benchmarks knobs`). The result is the same
layer - same weights, same moving-statistics update (the fused op's Bessel-corrected variance is converted back
to Keras' biased one), same outputs up to float32 round-off - so zoo files and models move freely between this
class and Keras'. Inference, the other backends and every case the fused op does not cover (masks, renorm,
synchronized statistics, an axis other than the last of a 4D input, non-float32 inputs, a frozen layer) run
Keras' own code.

Examples:
    >>> import numpy as np
    >>> layer = BatchNormalization(momentum=0.9)
    >>> y = layer(np.ones((2, 4, 4, 3), "float32"), training=True)
    >>> tuple(y.shape)
    (2, 4, 4, 3)
"""

import keras
from keras import ops

from keras_er import backend_helpers
from keras_er.layers.placeholders import PlaceholderWeights


@keras.saving.register_keras_serializable(package="keras_er")
class BatchNormalization(PlaceholderWeights, keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused training step on TensorFlow (see the module docstring).

    Set `layer.fused = False` to run Keras' own code everywhere (e.g. to compare a run with one whose
    BatchNorm cannot be fused, such as synchronised statistics: popup's top-k can turn round-off into a
    different selection). Not part of the config: it changes speed, not the layer.
    """

    fused = True

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and mask is None and self._fusable(inputs):
            return self._fused_call(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _fusable(self, inputs):
        return (
            self.fused
            and keras.backend.backend() == "tensorflow"
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and self.compute_dtype == "float32"
        )

    def _fused_call(self, inputs):
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else ops.ones((channels,), dtype=inputs.dtype)
        beta = self.beta if self.center else ops.zeros((channels,), dtype=inputs.dtype)
        outputs, mean, variance = backend_helpers.fused_batch_norm(inputs, gamma, beta, self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs
