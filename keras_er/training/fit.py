"""`fit`: train a model with a `Recipe`, checkpoints, logs and exact resume."""

import json
import time
from pathlib import Path

import keras

from keras_er.masks import masked_layers
from keras_er.sparsify import freeze_normalization_affine
from keras_er.training.recipe import Recipe


class _EpochSetter(keras.callbacks.Callback):
    """Tells the data which epoch starts, so shuffling/augmentation follow it."""

    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start


def compile_for_training(model, recipe, steps_per_epoch):
    model.compile(
        optimizer=recipe.optimizer(steps_per_epoch),
        loss=recipe.loss(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(
                min(5, model.outputs[0].shape[-1]), name="top5"
            ),
        ],
    )


def fit(model, train, recipe=None, validation=None, out_dir=None, resume=False,
        verbose="auto", callbacks=()):
    """Train `model` on `train` (a `keras_er.data.ImageBatches`) with `recipe`.

    With `out_dir`, the run keeps a backup each epoch (`BackupAndRestore`),
    a per-epoch `log.csv` and `recipe.json`; `resume=True` continues a run
    that stopped, from its last finished epoch, with the same batches it
    would have seen. Without `resume`, an `out_dir` holding a run is refused.
    A model with popup layers trains only its scores: normalization
    scale/offset are frozen here too (a reloaded `.keras` file forgets that).

    Returns:
        The Keras `History`.
    """
    recipe = recipe or Recipe()
    if any(layer.popup for layer in masked_layers(model)):
        freeze_normalization_affine(model)
    steps = len(train)
    compile_for_training(model, recipe, steps)
    all_callbacks = [_EpochSetter(train), _EpochTimer(), *callbacks]
    if out_dir is not None:
        out = Path(out_dir)
        backup = out / "backup"
        if backup.exists() and not resume:
            raise ValueError(
                f"{out} already holds a run; pass resume=True (CLI: --resume) to "
                "continue it, or choose another output folder."
            )
        out.mkdir(parents=True, exist_ok=True)
        # Keras draws a batch to build the model before the first
        # on_epoch_begin, so the data must already be at the resumed epoch.
        metadata = backup / "training_metadata.json"
        if resume and metadata.is_file():
            train.set_epoch(json.loads(metadata.read_text())["epoch"])
        (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1))
        all_callbacks += [
            keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
            keras.callbacks.CSVLogger(str(out / "log.csv"), append=resume),
        ]
    if not model.built:
        model(train[0][0][:1])
    return model.fit(
        train,
        epochs=recipe.epochs,
        validation_data=validation,
        shuffle=False,  # the data shuffles itself, from (seed, epoch)
        callbacks=all_callbacks,
        verbose=verbose,
    )
