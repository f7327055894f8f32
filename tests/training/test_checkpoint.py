"""Run-folder backups: checked, the previous epoch kept, damaged files named, old runs restored."""

import json
import subprocess
import sys
import textwrap

import pytest

from keras_er import training
from keras_er.files import FolderLockedError
from keras_er.training import checkpoint
from keras_er.training.recipe import Recipe
from tests.helpers import StopAt
from tests.helpers import masked_cnn
from tests.training.test_loop import synthetic

RECIPE = Recipe(epochs=3, warmup_epochs=1, learning_rate=0.05)


def interrupted_run(folder, stop_at=2):
    model = masked_cnn(seed=0)
    with pytest.raises(KeyboardInterrupt):
        training.fit(model, synthetic(), RECIPE, out_dir=folder, verbose=0, callbacks=[StopAt(stop_at)])
    return json.loads((folder / "backup" / "state.json").read_text())


def test_backups_keep_the_latest_and_the_previous_epoch(tmp_path):
    state = interrupted_run(tmp_path)
    assert state["latest"]["epoch"] == 2 and state["previous"]["epoch"] == 1
    files = sorted(p.name for p in (tmp_path / "backup").glob("*.weights.h5"))
    assert files == ["epoch-0001.weights.h5", "epoch-0002.weights.h5"]


def test_a_damaged_latest_backup_resumes_from_the_previous_epoch(tmp_path):
    state = interrupted_run(tmp_path)
    latest = tmp_path / "backup" / state["latest"]["file"]
    latest.write_bytes(latest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"Resuming from epoch 1 .*epoch-0002.weights.h5 is damaged"):
        history = training.fit(masked_cnn(seed=3), synthetic(), RECIPE, out_dir=tmp_path, resume=True, verbose=0)
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 ran again
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]  # no duplicated epoch


def test_no_loadable_backup_is_a_clear_error_naming_the_files(tmp_path):
    state = interrupted_run(tmp_path)
    for key in ("latest", "previous"):
        (tmp_path / "backup" / state[key]["file"]).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"No backup .*epoch-0002.weights.h5 is damaged.*epoch-0001"):
        training.fit(masked_cnn(), synthetic(), RECIPE, out_dir=tmp_path, resume=True, verbose=0)


def test_resume_refuses_another_recipe_and_keeps_the_record(tmp_path):
    interrupted_run(tmp_path)
    before = (tmp_path / "recipe.json").read_text()
    other = Recipe(epochs=3, warmup_epochs=1, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"another recipe \(learning_rate 0.05 -> 0.1\)"):
        training.fit(masked_cnn(), synthetic(), other, out_dir=tmp_path, resume=True, verbose=0)
    assert (tmp_path / "recipe.json").read_text() == before


def test_a_run_folder_in_use_by_another_process_is_refused(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from keras_er.files import folder_lock
            with folder_lock({str(tmp_path)!r}):
                print("held", flush=True)
                time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match="training by another process"):
            training.fit(masked_cnn(), synthetic(), RECIPE, out_dir=tmp_path, verbose=0)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_a_keras_backup_and_restore_folder_is_refused(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 1}))
    (tmp_path / "recipe.json").write_text(json.dumps(RECIPE.to_dict()))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    before = sorted([*before, ".lock"])  # the folder's advisory lock file (files.folder_lock) stays
    with pytest.raises(ValueError, match="BackupAndRestore"):
        training.fit(masked_cnn(seed=0), synthetic(), RECIPE, out_dir=tmp_path, resume=True, verbose=0)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_kill_between_log_and_backup_leaves_no_gap_in_the_log(tmp_path, monkeypatch):
    original = checkpoint.EpochBackup.on_epoch_end

    def killed_at_epoch_2(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt  # the log row of epoch 2 is written, its backup is not
        original(self, epoch, logs)

    monkeypatch.setattr(checkpoint.EpochBackup, "on_epoch_end", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        training.fit(masked_cnn(seed=0), synthetic(), RECIPE, out_dir=tmp_path, verbose=0)
    monkeypatch.setattr(checkpoint.EpochBackup, "on_epoch_end", original)
    training.fit(masked_cnn(seed=0), synthetic(), RECIPE, out_dir=tmp_path, resume=True, verbose=0)
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]


def test_after_a_fallback_resume_two_backups_are_kept_again(tmp_path):
    state = interrupted_run(tmp_path)
    latest = tmp_path / "backup" / state["latest"]["file"]
    latest.write_bytes(b"damaged")
    with pytest.warns(UserWarning):
        training.fit(masked_cnn(), synthetic(), RECIPE, out_dir=tmp_path, resume=True, verbose=0)
    state = json.loads((tmp_path / "backup" / "state.json").read_text())
    assert state["latest"]["epoch"] == 3 and state["previous"]["epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "epoch-0002.weights.h5",
        "epoch-0003.weights.h5",
        "state.json",
    ]
