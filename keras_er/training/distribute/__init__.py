"""Data-parallel training on each backend's own engine (the one module of `training` that imports frameworks).

| backend | engine | one host | several hosts |
| --- | --- | --- | --- |
| jax | `keras.distribution.DataParallel` | the local devices | `keras.distribution.initialize(...)` first |
| tensorflow | `tf.distribute.MirroredStrategy` | GPUs or N logical CPUs | `MultiWorkerMirroredStrategy`, `TF_CONFIG` |
| torch | DDP: `torch.distributed` all-reduce | `torchrun --nproc_per_node N` | `torchrun --nnodes M ...` |

`data_parallel(devices)` returns an `Engine`. Build the model inside `engine.scope()`
and pass the engine to `keras_er.training.fit(..., distribution=engine)`; `fit` compiles
inside the scope, shards the batches where the engine needs it and checks the replicas.

The recipe is per *global* batch: with N devices each device computes `batch_size / N`
images of the same global batch, so the learning rate and schedule are those of one
device and the losses equal a one-device run's (BatchNorm statistics are synchronised
over the global batch on every engine). To grow the global batch with the devices,
pass `batch_size=N*128` and scale the learning rate linearly (Goyal et al. 2017).

Masks and popup scores/kernels are drawn in numpy from the seed on every replica;
`fit` checks that every replica holds the same masks before training and at each
epoch end, instead of assuming it.
"""

import os

import keras

from keras_er import arguments
from keras_er.training.distribute.engine import AveragedLogs
from keras_er.training.distribute.engine import Engine
from keras_er.training.distribute.engine import ReplicaCheck
from keras_er.training.distribute.engine import ShardedBatches
from keras_er.training.distribute.engine import check_even_batches
from keras_er.training.distribute.engine import check_identical_masks
from keras_er.training.distribute.engine import mask_checksum
from keras_er.training.distribute.engine import replicated_variables
from keras_er.training.distribute.jax_engines import JaxDataParallel
from keras_er.training.distribute.jax_engines import JaxModelParallel
from keras_er.training.distribute.jax_engines import join_jax_hosts
from keras_er.training.distribute.jax_engines import layout_map
from keras_er.training.distribute.jax_engines import model_parallel
from keras_er.training.distribute.tensorflow_engine import TensorFlowMirrored
from keras_er.training.distribute.tensorflow_engine import configure_tensorflow_cpus
from keras_er.training.distribute.torch_engine import TorchDDP


def data_parallel(devices=None):
    """The data-parallel `Engine` of the current Keras backend over `devices` local devices.

    Args:
        devices: number of devices (None: all; on a CPU-only TensorFlow, N
            logical CPU devices are made, which must happen before TensorFlow
            runs anything). On torch it must equal the processes `torchrun`
            started (`WORLD_SIZE`).

    Example (one device here, so nothing is split):

    >>> engine = keras_er.training.distribute.data_parallel(1)
    >>> engine.describe()["devices"]
    1
    """
    arguments.integer(devices, "devices", minimum=1, allow_none=True)
    backend = keras.backend.backend()
    if backend not in ENGINES:
        raise ValueError(f"Data-parallel training is not supported on the {backend!r} backend.")
    if backend == "torch" and devices == 1 and "WORLD_SIZE" not in os.environ:
        return Engine()  # one device is one process: nothing to launch or average
    return ENGINES[backend](devices)


# Set by torchrun, for keras.distribution.initialize(), and for TensorFlow multi-worker training.
LAUNCHED_BY = ("WORLD_SIZE", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "TF_CONFIG")


def launched():
    """Whether this process was started as one of several (then it always trains distributed)."""
    return any(name in os.environ for name in LAUNCHED_BY)


ENGINES = {"jax": JaxDataParallel, "tensorflow": TensorFlowMirrored, "torch": TorchDDP}


__all__ = [
    "ENGINES",
    "AveragedLogs",
    "Engine",
    "JaxDataParallel",
    "JaxModelParallel",
    "ReplicaCheck",
    "ShardedBatches",
    "TensorFlowMirrored",
    "TorchDDP",
    "check_even_batches",
    "check_identical_masks",
    "configure_tensorflow_cpus",
    "data_parallel",
    "join_jax_hosts",
    "launched",
    "layout_map",
    "mask_checksum",
    "model_parallel",
    "replicated_variables",
]
