"""JAX engines: `keras.distribution.DataParallel` and `ModelParallel` (masked kernels split on their output axis)."""

import os

import keras
import numpy as np

from keras_er.masks.model import masked_layers
from keras_er.training.distribute.engine import Engine
from keras_er.training.distribute.engine import ShardedBatches
from keras_er.training.distribute.engine import check_even_batches
from keras_er.training.distribute.engine import device_count


class JaxDataParallel(Engine):
    """`keras.distribution.DataParallel`: one jit over a device mesh; batches split on the batch axis.

    Several hosts (or processes): call `keras.distribution.initialize(coordinator, num_processes,
    process_id)` on every one first (on CPUs, after
    `jax.config.update("jax_cpu_collectives_implementation", "gloo")`); `devices` then counts
    the global devices, and each process feeds its slice of every global batch.
    """

    name = "keras.distribution.DataParallel"

    def __init__(self, devices=None):
        import jax

        join_jax_hosts()
        self.processes, self.rank = jax.process_count(), jax.process_index()
        available = keras.distribution.list_devices()
        if self.processes > 1 and devices not in (None, len(jax.local_devices())):
            raise ValueError(
                f"With {self.processes} JAX processes `devices` counts this process's devices and all of them "
                f"are used ({len(jax.local_devices())}); got {devices!r}."
            )
        self.devices = device_count(None if self.processes > 1 else devices, len(available), "JAX devices")
        self.distribution = keras.distribution.DataParallel(
            devices=available[: self.devices],
            auto_shard_dataset=False,  # each process reads its own slice of the global batches (`shard`)
        )

    def scope(self):
        return self.distribution.scope()

    def copies(self, variable):
        """Per position in the variable: the copies the devices hold of it."""
        groups = {}
        for shard in variable.value.addressable_shards:
            groups.setdefault(str(shard.index), []).append(np.asarray(shard.data))
        return list(groups.values())

    def shard(self, batches):
        if self.processes == 1:
            check_even_batches(batches, self.devices, "devices")  # JAX would stop mid-epoch (IndivisibleError)
            return batches
        return ShardedBatches(batches, self.rank, self.processes)

    def allgather(self, value):
        from jax.experimental import multihost_utils

        return [int(item) for item in np.ravel(multihost_utils.process_allgather(np.array([value], np.int64)))]


def join_jax_hosts():
    """`keras.distribution.initialize()` from `KERAS_DISTRIBUTION_JOB_ADDRESSES`/`_NUM_PROCESSES`/`_PROCESS_ID`.

    Nothing without those variables, or when this process has joined already.
    CPU processes talk through gloo (set before joining; no effect on GPUs).
    """
    if "KERAS_DISTRIBUTION_JOB_ADDRESSES" not in os.environ:
        return
    import jax

    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()


def model_parallel(devices, model, model_axis=None):
    """JAX `keras.distribution.ModelParallel`: masked kernels (and their masks, scores) split on the output axis.

    Args:
        devices: local (or, after `keras.distribution.initialize`, global) JAX devices to use.
        model: a model like the one to train (built outside any scope); its
            variable paths decide the `LayoutMap` (`layout_map`).
        model_axis: devices per model replica (default: all of them, so the
            batch is not split); `devices / model_axis` replicas split the batch.

    Build the model to train inside `engine.scope()`, with the same layer names.
    """
    if keras.backend.backend() != "jax":
        raise ValueError(f"model_parallel needs the JAX backend (keras.distribution); got {keras.backend.backend()!r}.")
    return JaxModelParallel(devices, model, model_axis)


def layout_map(model, mesh, axis="model"):
    """A `LayoutMap` splitting every masked layer's kernel, mask and popup scores on their last (output) axis.

    Variables whose last axis the mesh's `axis` does not divide, and every other
    variable, are replicated. A mask lives on the same devices as its kernel,
    so `kernel * mask` and popup's top-k need no data movement beyond XLA's.
    """
    layouts = keras.distribution.LayoutMap(mesh)
    parts = mesh.shape[mesh.axis_names.index(axis)]
    for layer in masked_layers(model):
        for variable in (layer.kernel_variable, layer.mask, getattr(layer, "scores", None)):
            if variable is not None and variable.shape[-1] % parts == 0:
                layouts[variable.path] = (None,) * (len(variable.shape) - 1) + (axis,)
    return layouts


class JaxModelParallel(JaxDataParallel):
    name = "keras.distribution.ModelParallel"

    def __init__(self, devices, model, model_axis=None):
        available = keras.distribution.list_devices()
        self.devices = device_count(devices, len(available), "JAX devices")
        model_axis = model_axis or self.devices
        if self.devices % model_axis:
            raise ValueError(f"`model_axis`={model_axis} must divide `devices`={self.devices}.")
        mesh = keras.distribution.DeviceMesh(
            (self.devices // model_axis, model_axis), ("batch", "model"), available[: self.devices]
        )
        self.distribution = keras.distribution.ModelParallel(layout_map=layout_map(model, mesh), batch_dim_name="batch")
        import jax

        self.processes, self.rank = jax.process_count(), jax.process_index()
