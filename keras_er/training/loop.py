"""`fit`: train a model with a `Recipe`, checkpoints, logs and exact resume."""

import json
import time
from pathlib import Path

import keras

from keras_er.files import folder_lock
from keras_er.files import json_text
from keras_er.files import write_text_atomic
from keras_er.layers.pixels import check_pixels_match
from keras_er.masks import masked_layers
from keras_er.training import checkpoint
from keras_er.training.distribute import Engine
from keras_er.training.popup import freeze_normalization_affine
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


def compile_for_training(model, recipe, steps_per_epoch, options=None):
    """Compile `model` with the recipe's optimizer and loss, accuracy and top-5 metrics.

    `options`: keyword arguments of `model.compile` (e.g. `jit_compile`); none by default, because Keras'
    own defaults are the fastest measured setting on every backend (`python -m benchmarks knobs`,
    benchmarks/results/knobs.md).
    """
    model.compile(
        **(options or {}),
        optimizer=recipe.optimizer(steps_per_epoch),
        loss=recipe.loss(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(min(5, model.outputs[0].shape[-1]), name="top5"),
        ],
    )


def fit(
    model,
    train,
    recipe=None,
    validation=None,
    out_dir=None,
    resume=False,
    verbose="auto",
    callbacks=(),
    distribution=None,
    compile_options=None,
):
    """Train `model` on `train` (a `keras_er.data.ImageBatches`) with `recipe`.

    A model keras_er built takes raw pixels (`keras_er.data.load`'s default);
    normalised batches (`normalize=True`, for a bare network) are refused for it.

    With `out_dir`, the run keeps a checked backup each epoch (the previous one
    too), a per-epoch `log.csv` and `recipe.json`, and holds the folder's lock
    while it trains. `resume=True` continues a run that stopped, from its last
    good backup, with the same batches it would have seen; the recipe must be
    the run's own. Without `resume`, an `out_dir` holding a run is refused
    before anything is written. A model with popup layers trains only its
    scores: normalization scale/offset are frozen here too (a reloaded
    `.keras` file forgets that).

    `distribution`: an engine from `keras_er.training.distribute.data_parallel`
    (build the model inside its `scope()`); `train` holds the global batches and
    each device computes its part. Only the chief process writes `out_dir`; every
    process restores from it on `resume`.

    `compile_options`: keyword arguments for `model.compile` (e.g.
    `{"jit_compile": True}`); Keras' defaults when None.

    Returns:
        The Keras `History`.

    Raises:
        ValueError: a run folder that holds a run (without `resume`), a resume
            with another recipe, or backups that cannot be loaded.
        keras_er.files.FolderLockedError: another process trains in `out_dir`.
    """
    for batches in (train, validation):
        check_pixels_match(model, batches)  # before anything is written
    recipe = recipe or Recipe()
    engine = distribution or Engine()
    train = engine.shard(train)
    extra = [*callbacks, *engine.callbacks()]
    with engine.scope():
        try:
            if out_dir is None or not engine.is_chief:
                _prepare(model, train, recipe, compile_options)
                resumed = out_dir is not None and resume
                initial_epoch = checkpoint.restore(model, Path(out_dir) / "backup") if resumed else 0
                _start_together(model, engine, initial_epoch)
                shown = verbose if engine.is_chief else 0
                return _fit(model, train, recipe, validation, shown, extra, initial_epoch)
            out = Path(out_dir)
            with folder_lock(out, wait=False, purpose="training"):
                check_run_folder(out, recipe, resume)
                _prepare(model, train, recipe, compile_options)
                initial_epoch = checkpoint.restore(model, out / "backup") if resume else 0
                _start_together(model, engine, initial_epoch)
                if resume:
                    _keep_log_rows(out / "log.csv", initial_epoch)
                write_text_atomic(out / "recipe.json", json_text(recipe.to_dict()))
                extra += [  # log first: a kill between the two leaves a row that resume drops
                    keras.callbacks.CSVLogger(str(out / "log.csv"), append=initial_epoch > 0),
                    checkpoint.EpochBackup(out / "backup"),
                ]
                return _fit(model, train, recipe, validation, verbose, extra, initial_epoch)
        finally:
            engine.release(model)


def check_run_folder(out, recipe, resume):
    """Refuse a folder that holds a run (without resume) or a resume with another recipe."""
    out = Path(out)
    markers = [name for name in RUN_FILES if (out / name).exists()]
    if markers and not resume:
        raise ValueError(
            f"{out} already holds a run ({', '.join(markers)}); pass resume=True (CLI: "
            "--resume) to continue it, or choose another output folder."
        )
    saved_path = out / "recipe.json"
    if resume and saved_path.is_file():
        details = describe_changes(json.loads(saved_path.read_text()), recipe.to_dict())
        if details:
            raise ValueError(
                f"Resuming {out} with another recipe ({details}): a resumed run must keep "
                "its recipe. Start a new run folder for other settings."
            )


def describe_changes(saved, wanted):
    """`"key old -> new, ..."` for every key of `wanted` whose value differs in `saved`."""
    return ", ".join(
        f"{key} {saved.get(key)!r} -> {value!r}" for key, value in wanted.items() if saved.get(key) != value
    )


# What `fit` leaves in a run folder (the CLI adds config.json and summary.json).
RUN_FILES = ("recipe.json", "log.csv", "backup", "model.weights.h5")


def _start_together(model, engine, initial_epoch):
    """Every process resumes at the same epoch (backups on a shared filesystem) and from the same state."""
    engine.agree(initial_epoch, "the epoch to resume from (is the run folder on a filesystem all hosts share?)")
    engine.prepare(model)


def _prepare(model, train, recipe, compile_options=None):
    """Freeze popup models' normalization affine, compile with the recipe, build."""
    if any(layer.popup for layer in masked_layers(model)):
        freeze_normalization_affine(model)
    compile_for_training(model, recipe, len(train), compile_options)
    if not model.built:
        model(train[0][0][:1])


def _fit(model, train, recipe, validation, verbose, extra, initial_epoch):
    # Keras draws a batch to build the model before the first on_epoch_begin,
    # so the data must already be at the starting epoch.
    train.set_epoch(initial_epoch)
    return model.fit(
        train,
        epochs=recipe.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        shuffle=False,  # the data shuffles itself, from (seed, epoch)
        callbacks=[_EpochSetter(train), _EpochTimer(), *extra],
        verbose=verbose,
    )


def _keep_log_rows(log, epochs):
    """Drop log rows of epochs after the restored backup (they will be trained again)."""
    if not log.is_file():
        return
    lines = log.read_text().splitlines(keepends=True)
    write_text_atomic(log, "".join(lines[: 1 + epochs]))
