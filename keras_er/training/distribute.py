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

import contextlib
import functools
import os
import types
import zlib

import keras
import numpy as np

from keras_er.backend_helpers import sync_training_state
from keras_er.model_masks import masked_layers


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
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ValueError(f"`devices` must be a positive integer or None; got {devices!r}.")
    backend = keras.backend.backend()
    if backend not in ENGINES:
        raise ValueError(f"Data-parallel training is not supported on the {backend!r} backend.")
    if backend == "torch" and devices == 1 and "WORLD_SIZE" not in os.environ:
        return Engine()  # one device is one process: nothing to launch or average
    return ENGINES[backend](devices)


class Engine:
    """What `fit` needs from a distribution engine; one device, one process by default."""

    name = "none"
    devices = 1
    processes = 1
    rank = 0

    @property
    def is_chief(self):
        """Whether this process writes the run folder (logs, backups)."""
        return self.rank == 0

    def scope(self):
        """Context in which models and optimizers are created."""
        return contextlib.nullcontext()

    def shard(self, batches):
        """This process's part of the global batches (all of them in a one-process engine)."""
        return batches

    def prepare(self, model):
        """After compile and any restore, before the first step: make every replica start equal (and check it)."""
        if self.devices > 1 or self.processes > 1:
            check_identical_masks(model, self)

    def release(self, model):
        """After training: undo what `prepare` changed on the model (synchronised BatchNorm)."""

    def agree(self, value, what):
        """Raise unless every process holds the same `value` (a small int)."""
        values = self.allgather(value) if self.processes > 1 else [value]
        if len(set(values)) > 1:
            raise RuntimeError(f"The processes disagree on {what}: {values} (by rank).")

    def copies(self, variable):
        """Groups of this process's copies of `variable` that must be equal (one copy here)."""
        return [[keras.ops.convert_to_numpy(variable)]]

    def callbacks(self):
        """Callbacks `fit` adds: a replica check at every epoch end when there are replicas."""
        return [ReplicaCheck(self)] if self.devices > 1 else []

    def allgather(self, value):
        """`value` (a small int) of every process, in rank order."""
        return [value]

    def average(self, value):
        """The mean of `value` (a float) over the processes."""
        return float(value)

    def describe(self):
        return {"engine": self.name, "devices": self.devices, "processes": self.processes}


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
        self.devices = _device_count(None if self.processes > 1 else devices, len(available), "JAX devices")
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


# Set by torchrun, for keras.distribution.initialize(), and for TensorFlow multi-worker training.
LAUNCHED_BY = ("WORLD_SIZE", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "TF_CONFIG")


def launched():
    """Whether this process was started as one of several (then it always trains distributed)."""
    return any(name in os.environ for name in LAUNCHED_BY)


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
        self.devices = _device_count(devices, len(available), "JAX devices")
        model_axis = model_axis or self.devices
        if self.devices % model_axis:
            raise ValueError(f"`model_axis`={model_axis} must divide `devices`={self.devices}.")
        mesh = keras.distribution.DeviceMesh(
            (self.devices // model_axis, model_axis), ("batch", "model"), available[: self.devices]
        )
        self.distribution = keras.distribution.ModelParallel(layout_map=layout_map(model, mesh), batch_dim_name="batch")
        import jax

        self.processes, self.rank = jax.process_count(), jax.process_index()


class TensorFlowMirrored(Engine):
    """`tf.distribute.MirroredStrategy` (one host), `MultiWorkerMirroredStrategy` when `TF_CONFIG` is set."""

    def __init__(self, devices=None):
        import tensorflow as tf

        if "TF_CONFIG" in os.environ:
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            self.name = "tf.distribute.MultiWorkerMirroredStrategy"
            resolver = self.strategy.cluster_resolver
            self.processes = len(resolver.cluster_spec().as_dict().get("worker", [None]))
            self.rank = resolver.task_id or 0
        else:
            names = _tensorflow_devices(devices)
            self.strategy = tf.distribute.MirroredStrategy(names)
            self.name = "tf.distribute.MirroredStrategy"
        self.devices = self.strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def copies(self, variable):
        value = variable.value
        replicas = getattr(value, "values", (value,))  # a MirroredVariable holds one component per device
        return [[np.asarray(replica.numpy()) for replica in replicas]]

    def prepare(self, model):
        for layer in _batch_norms(model):
            layer.synchronized = True  # statistics over the global batch, as one device computes them
        check_identical_masks(model, self)

    def release(self, model):
        for layer in _batch_norms(model):
            layer.synchronized = False  # a saved model must load on every backend


class TorchDDP(Engine):
    """DDP's contract on a Keras model: same start on every rank, gradients averaged before each update.

    Started by `torchrun` (which sets `RANK`, `WORLD_SIZE`, `MASTER_ADDR`); the process
    group uses NCCL on GPUs and gloo on CPUs. Each rank trains on its slice of every
    global batch; `prepare` broadcasts rank 0's weights, synchronises BatchNorm and
    makes the optimizer average gradients over the ranks (what `DistributedDataParallel`
    does for a torch module; Keras' trainer calls the model directly, so it is done here).
    """

    name = "torch.distributed (DDP)"

    def __init__(self, devices=None):
        import torch.distributed as dist

        if "WORLD_SIZE" not in os.environ and not dist.is_initialized():
            raise ValueError(
                "torch data-parallel training runs one process per device under torchrun: "
                "`torchrun --nproc_per_node N -m keras_er train ...` (`keras-er train --devices N` does this)."
            )
        if not dist.is_initialized():
            import torch

            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per process
            dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
        self.processes = self.devices = dist.get_world_size()
        self.rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.devices))
        if devices is not None and devices != local:
            raise ValueError(f"`devices`={devices} but torchrun started {local} processes on this host.")

    def shard(self, batches):
        return ShardedBatches(batches, self.rank, self.processes)

    def prepare(self, model):
        import torch.distributed as dist

        check_identical_masks(model, self)  # before the broadcast, which would hide a difference
        for variable in [*model.variables, *model.optimizer.variables]:
            dist.broadcast(variable.value.data, src=0)
        for layer in _batch_norms(model):
            object.__setattr__(layer, "_moments", types.MethodType(_synchronized_moments, layer))
        _average_gradients_before_update(model.optimizer, self.processes)

    def release(self, model):
        for layer in _batch_norms(model):
            if "_moments" in vars(layer):
                object.__delattr__(layer, "_moments")
        optimizer = model.optimizer
        if "apply" in vars(optimizer):
            object.__delattr__(optimizer, "apply")

    def callbacks(self):
        return [AveragedLogs(self), *super().callbacks()]

    def allgather(self, value):
        import torch
        import torch.distributed as dist

        gathered = [torch.zeros(1, dtype=torch.int64) for _ in range(self.processes)]
        dist.all_gather(gathered, torch.tensor([value], dtype=torch.int64))
        return [int(item.item()) for item in gathered]

    def average(self, value):
        import torch
        import torch.distributed as dist

        total = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total.item()) / self.processes


def _average_gradients_before_update(optimizer, processes):
    import torch.distributed as dist

    import torch

    apply = optimizer.apply

    def apply_averaged(gradients, variables=None):
        present = [gradient for gradient in gradients if gradient is not None]  # the same on every rank
        if present:  # one all-reduce for all of them
            flat = torch.cat([gradient.reshape(-1) for gradient in present])
            dist.all_reduce(flat)
            flat.div_(processes)
            for gradient, part in zip(present, flat.split([gradient.numel() for gradient in present])):
                gradient.copy_(part.view_as(gradient))
        return apply(gradients, variables)

    optimizer.apply = apply_averaged


def _synchronized_moments(layer, inputs, mask):
    """BatchNorm mean/variance over the global batch (sums all-reduced, differentiably)."""
    import torch

    if mask is not None:
        raise ValueError("Synchronised BatchNorm does not support masked inputs.")
    axes = list(layer._reduction_axes)
    count = torch.tensor([float(np.prod([inputs.shape[a] for a in axes]))], device=inputs.device)
    total = _summed_over_ranks(torch.cat([inputs.sum(dim=axes), torch.square(inputs).sum(dim=axes), count]))
    channels = (total.shape[0] - 1) // 2
    mean = total[:channels] / total[-1]
    variance = (total[channels : 2 * channels] / total[-1] - torch.square(mean)).clamp_min(0)
    return mean, variance


def _summed_over_ranks(tensor):
    """All-reduce (sum) with its gradient: the backward pass sums the ranks' gradients too."""
    return _sum_over_ranks_function().apply(tensor)


@functools.cache
def _sum_over_ranks_function():
    import torch
    import torch.distributed as dist

    class SumOverRanks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value):
            total = value.clone()
            dist.all_reduce(total)
            return total

        @staticmethod
        def backward(ctx, gradient):
            total = gradient.clone()
            dist.all_reduce(total)
            return total

    return SumOverRanks


def check_even_batches(batches, parts, what):
    """Refuse, before training, batches that `parts` devices or processes cannot split evenly.

    `batches` is indexable with a length (a PyDataset such as `data.load`'s); all its batches but the last have
    the first's size, so those two are checked. Anything else (a generator, a tf.data pipeline) is not.
    """
    if parts == 1 or not (hasattr(batches, "__len__") and hasattr(batches, "__getitem__")):
        return
    for index in sorted({0, len(batches) - 1}):
        _check_split(index, len(batches[index][1]), parts, what)


def _check_split(index, size, parts, what):
    if size % parts:
        raise ValueError(
            f"Batch {index} has {size} images, which {parts} {what} cannot split evenly: "
            "choose a batch size and dataset size divisible by the number of devices (or `limit` the data)."
        )


class ShardedBatches(keras.utils.PyDataset):
    """Rank `rank`'s contiguous slice of every batch of `batches` (the global batches)."""

    def __init__(self, batches, rank, processes):
        super().__init__()
        self.batches, self.rank, self.processes = batches, rank, processes
        check_even_batches(batches, processes, "processes")

    def _slice(self, index, size):
        _check_split(index, size, self.processes, "processes")
        part = size // self.processes
        return slice(self.rank * part, (self.rank + 1) * part)

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        x, y = self.batches[index]
        chosen = self._slice(index, len(y))
        return x[chosen], y[chosen]


class AveragedLogs(keras.callbacks.Callback):
    """Training metrics averaged over the processes (each computed its slice), before anything logs them."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def on_epoch_end(self, epoch, logs=None):
        for key in sorted(logs or {}):
            if not key.startswith("val_") and key != "epoch_seconds":
                logs[key] = self.engine.average(logs[key])


class ReplicaCheck(keras.callbacks.Callback):
    """Refuses to go on once the replicas' masks differ (checked at every epoch end)."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def on_epoch_end(self, epoch, logs=None):
        sync_training_state(self.model)  # JAX: read what training reached, not the epoch's start
        check_identical_masks(self.model, self.engine)


def replicated_variables(model):
    """What must be equal on every replica: masks, popup scores and popup's frozen kernels."""
    for layer in masked_layers(model):
        yield layer.mask
        if layer.popup:
            yield layer.scores
            yield layer.kernel_variable


def mask_checksum(model):
    """A crc32 over `replicated_variables(model)` as this process holds them."""
    checksum = 0
    for variable in replicated_variables(model):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        checksum = zlib.crc32(value.tobytes(), checksum)
    return checksum


def check_identical_masks(model, engine):
    """Raise if any device or process holds other masks, scores or popup kernels than the others."""
    for variable in replicated_variables(model):
        for group in engine.copies(variable):
            if any(not np.array_equal(group[0], copy) for copy in group[1:]):
                raise RuntimeError(f"The replicas of {variable.path} differ; training stopped.")
    checksums = engine.allgather(mask_checksum(model)) if engine.processes > 1 else []
    if len(set(checksums)) > 1:
        raise RuntimeError(f"The replicas' masks differ (crc32 per rank: {checksums}); training stopped.")


def _batch_norms(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def _device_count(devices, available, what):
    if devices is None:
        return available
    if devices > available:
        raise ValueError(f"`devices`={devices} but only {available} {what} are available.")
    return devices


def _tensorflow_devices(devices):
    """Names of `devices` GPUs, or of `devices` logical CPUs made for the purpose."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):  # physical: listing logical devices would start TensorFlow
        gpus = tf.config.list_logical_devices("GPU")
        return [gpu.name for gpu in gpus[: _device_count(devices, len(gpus), "GPUs")]]
    wanted = devices or 1
    if wanted > 1:
        configure_tensorflow_cpus(wanted)
    return [cpu.name for cpu in tf.config.list_logical_devices("CPU")[:wanted]]


def configure_tensorflow_cpus(count):
    """Split the CPU into `count` logical devices (before TensorFlow has run anything)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) >= count:
        return  # already split (by an earlier engine, or the user)
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise RuntimeError(
            f"TensorFlow has already started, so it cannot make {count} logical CPU devices; "
            "create the engine (or call configure_tensorflow_cpus) before building any model."
        ) from error


ENGINES = {"jax": JaxDataParallel, "tensorflow": TensorFlowMirrored, "torch": TorchDDP}
