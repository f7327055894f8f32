"""A run folder's backups: one per epoch, the previous one kept, checked before use.

`EpochBackup` saves the model and optimizer state at the end of every epoch as
`backup/epoch-NNNN.weights.h5` (written to a temporary name, then renamed) and
records it with its sha256 in `backup/state.json`, keeping the previous epoch's
file. `restore` loads the newest backup whose checksum and contents are good,
falling back to the previous epoch (a warning names the damaged file), so a
resume loses at most one epoch; if nothing loads, the error names every file.
A folder backed up by Keras' `BackupAndRestore` (`training_metadata.json`) is
refused: its file records no checksum.
"""

import json
import os
import warnings
from pathlib import Path

import keras

from keras_er.files import sha256_of
from keras_er.files import write_text_atomic

STATE = "state.json"


class EpochBackup(keras.callbacks.Callback):
    """Back up model + optimizer after each epoch into `folder` (see the module doc)."""

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        save_weights_atomic(self.model, self.folder / name)
        state = _read_state(self.folder)
        latest = {"epoch": epoch + 1, "file": name, "sha256": sha256_of(self.folder / name)}
        # The newest older backup (after resuming from `previous`, `latest` is this epoch's).
        older = [c for c in (state.get("latest"), state.get("previous")) if c and c["epoch"] <= epoch]
        previous = older[0] if older else None
        write_text_atomic(self.folder / STATE, json.dumps({"latest": latest, "previous": previous}))
        keep = {name, (previous or {}).get("file")}
        for old in [*self.folder.glob("epoch-*.weights.h5"), *self.folder.glob(".tmp-*.weights.h5")]:
            if old.name not in keep:
                old.unlink(missing_ok=True)


def save_weights_atomic(model, path):
    """`model.save_weights(path)` through a temporary name, so a kill never leaves half a file."""
    path = Path(path)
    temporary = path.with_name(f".tmp-{os.getpid()}.weights.h5")  # keras wants .weights.h5
    model.save_weights(str(temporary))
    os.replace(temporary, path)


def restore(model, folder):
    """Load the newest good backup in `folder` into `model` (compiled); return its epoch.

    Returns 0 when there is no backup.

    Raises:
        ValueError: backups exist but none can be loaded (each file and why).
    """
    folder = Path(folder)
    candidates = _candidates(folder)
    if not candidates:
        return 0
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    problems = []
    for candidate in candidates:
        path = folder / candidate["file"]
        problem = _load(model, path, candidate.get("sha256"))
        if problem is None:
            if problems:
                warnings.warn(
                    f"Resuming from epoch {candidate['epoch']} ({path.name}): " + "; ".join(problems),
                    stacklevel=2,
                )
            return candidate["epoch"]
        problems.append(f"{path} {problem}")
    raise ValueError(
        "No backup in this run folder can be loaded: " + "; ".join(problems) + ". Start the run again in a new folder."
    )


def _load(model, path, sha256):
    if not path.is_file():
        return "is missing"
    if sha256 is not None and sha256_of(path) != sha256:
        return "is damaged (sha256 differs from state.json)"
    try:
        model.load_weights(str(path))
    except Exception as error:  # h5py/keras raise many kinds for a damaged file
        return f"cannot be loaded ({type(error).__name__}: {str(error)[:200]})"
    return None


def has_backup(folder):
    """Whether `folder` holds an epoch backup that `restore` would use."""
    return bool(_candidates(Path(folder))) if Path(folder).is_dir() else False


def _candidates(folder):
    state = _read_state(folder)
    if state:
        return [c for c in (state.get("latest"), state.get("previous")) if c]
    if (folder / "training_metadata.json").is_file():
        raise ValueError(
            f"{folder} holds a Keras BackupAndRestore backup, which keras_er does not resume (it records no "
            "checksum); start the run again in a new folder."
        )
    return []


def _read_state(folder):
    path = Path(folder) / STATE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is damaged ({error}).") from None
