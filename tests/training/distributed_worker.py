"""Trains a masked ResNet20 for a few steps on one device, then data-parallel; prints what the test compares.

Run by tests/training/test_distribute.py in its own process (a process cannot
change its device count once a framework has started):

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax python distributed_worker.py OUT.json
    KERAS_BACKEND=tensorflow python distributed_worker.py OUT.json
    KERAS_BACKEND=torch torchrun --standalone --nproc_per_node 2 distributed_worker.py OUT.json

Options: --popup (popup scores over frozen kernels), --model-parallel (JAX:
`ModelParallel`), --dst set|rigl, --run-dir DIR (train 1 epoch into a run
folder, then resume it for the second).
"""

import argparse
import json
import os
import sys

import keras
import numpy as np

DEVICES = 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--popup", action="store_true")
    parser.add_argument("--model-parallel", action="store_true")
    parser.add_argument("--dst", choices=("set", "rigl"))
    parser.add_argument("--run-dir", help="train 1 epoch into this run folder, then resume it for the second")
    args = parser.parse_args()

    from keras_er.training import distribute

    if keras.backend.backend() == "tensorflow":
        distribute.configure_tensorflow_cpus(DEVICES)  # before anything runs
    several_processes = "KERAS_DISTRIBUTION_JOB_ADDRESSES" in os.environ  # then each brings its own devices
    engine = distribute.data_parallel(None if several_processes else DEVICES)
    if args.model_parallel:
        engine = distribute.model_parallel(DEVICES, build(args))
    reference = train(args, distribute.Engine())  # every process alone, on the whole batches
    result = train(args, engine)
    if engine.is_chief:
        report = {"engine": engine.describe(), "reference": reference, "distributed": result}
        with open(args.out, "w") as file:
            json.dump(report, file)


def build(args):
    from keras_er import zoo

    keras.utils.set_random_seed(0)
    return zoo.build(
        "resnet20",
        "erk",
        0.5,
        pretrained=False,
        popup=args.popup,
        popup_density=0.3,
        input_shape=(16, 16, 3),
        classes=10,
        include_preprocessing=False,
    )


def batches():
    from keras_er.data.pipeline import ImageBatches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 64)
    return ImageBatches(images, labels, 128.0, 64.0, batch_size=32, shuffle=True, augment=True, seed=0)


def train(args, engine):
    """Two epochs of four steps; the per-step losses (averaged over ranks) and the final variables."""
    from keras_er import dst
    from keras_er import training
    from keras_er.masks.model import masked_layers
    from keras_er.training.distribute import mask_checksum

    with engine.scope():
        model = build(args)
    unfuse_batch_norm(model)
    initial_checksum = mask_checksum(model)
    losses = StepLosses(engine)
    callbacks = [losses]
    if args.dst:
        callbacks.append(dst.get(args.dst, update_every=2, drop_fraction=0.3, end_fraction=1.0, data=batches()))
    recipe = training.Recipe(epochs=2, batch_size=32, warmup_epochs=0, learning_rate=0.001)
    if args.run_dir and engine.devices > 1:  # one epoch, a new model, then --resume for the second
        options = dict(out_dir=args.run_dir, verbose=0, distribution=engine)
        training.fit(model, batches(), recipe, callbacks=[StopAfterEpoch(0)], **options)
        with engine.scope():
            model = build(args)
        unfuse_batch_norm(model)
        training.fit(model, batches(), recipe, resume=True, callbacks=callbacks, **options)
    else:
        training.fit(model, batches(), recipe, verbose=0, callbacks=callbacks, distribution=engine)
    layers = masked_layers(model)
    return {
        "losses": losses.values,
        "weights": {v.path: numpy(v).tolist() for v in model.weights if v.path.endswith(("kernel", "scores"))},
        "nonzero": {layer.name: int(np.count_nonzero(numpy(layer.effective_kernel()))) for layer in layers},
        "stored_nonzero": {layer.name: int(np.count_nonzero(numpy(layer.kernel))) for layer in layers},
        "mask_ones": {layer.name: int(numpy(layer.mask).sum()) for layer in layers},
        "sharded": sharded_variables(model),
        "initial_checksum": initial_checksum,
        "checksums": engine.allgather(mask_checksum(model)),
    }


def unfuse_batch_norm(model):
    """Keras' BatchNorm code in every run: synchronised statistics (TF's engine) cannot use the fused op, and
    popup's top-k would turn the two ops' round-off into different selections."""
    from keras_er.layers import BatchNormalization
    from keras_er.masks.model import leaf_layers

    for layer in leaf_layers(model):
        if isinstance(layer, BatchNormalization):
            layer.fused = False


def sharded_variables(model):
    """Paths of the variables split across devices (JAX), not held whole by each."""
    if keras.backend.backend() != "jax":
        return []
    return [v.path for v in model.variables if not v.value.sharding.is_fully_replicated]


def numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


class StepLosses(keras.callbacks.Callback):
    """The loss of each step (Keras logs a running mean; this undoes it), averaged over processes."""

    def __init__(self, engine):
        super().__init__()
        self.engine, self.values, self.sum, self.seen = engine, [], 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.sum, self.seen = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        running = float(logs["loss"])
        step = running * (self.seen + 1) - self.sum
        self.sum, self.seen = running * (self.seen + 1), self.seen + 1
        self.values.append(self.engine.average(step))


class StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
