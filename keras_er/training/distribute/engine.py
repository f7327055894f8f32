"""The `Engine` base (one device, one process) and what every engine shares: batch sharding, replica checks."""

import contextlib
import zlib

import keras
import numpy as np

from keras_er.backend_helpers import sync_training_state
from keras_er.masks.model import all_layers
from keras_er.masks.model import masked_layers


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


def batch_norms(model):
    """Every BatchNormalization inside `model` (engines synchronise their statistics)."""
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def device_count(devices, available, what):
    if devices is None:
        return available
    if devices > available:
        raise ValueError(f"`devices`={devices} but only {available} {what} are available.")
    return devices
