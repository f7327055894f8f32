"""The TensorFlow engine: `tf.distribute.MirroredStrategy`, or `MultiWorkerMirroredStrategy` under `TF_CONFIG`."""

import os

import numpy as np

from keras_er.training.distribute.engine import Engine
from keras_er.training.distribute.engine import batch_norms
from keras_er.training.distribute.engine import check_identical_masks
from keras_er.training.distribute.engine import device_count


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
        for layer in batch_norms(model):
            layer.synchronized = True  # statistics over the global batch, as one device computes them
        check_identical_masks(model, self)

    def release(self, model):
        for layer in batch_norms(model):
            layer.synchronized = False  # a saved model must load on every backend


def _tensorflow_devices(devices):
    """Names of `devices` GPUs, or of `devices` logical CPUs made for the purpose."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):  # physical: listing logical devices would start TensorFlow
        gpus = tf.config.list_logical_devices("GPU")
        return [gpu.name for gpu in gpus[: device_count(devices, len(gpus), "GPUs")]]
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
