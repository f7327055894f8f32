"""keras_er.files: atomic writes and folder locks."""

import os
import re
import subprocess
import sys
import threading

import pytest

from keras_er.files import FolderLockedError
from keras_er.files import atomic_write
from keras_er.files import folder_lock
from keras_er.files import remove_stale_scratch
from keras_er.files import scratch_path


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    seen = []

    def other_thread():
        try:
            with folder_lock(tmp_path, wait=False):
                seen.append("entered")
        except FolderLockedError as error:
            seen.append(str(error))

    with folder_lock(tmp_path), folder_lock(tmp_path):  # re-entrant
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(seen) == 1 and "by another process or thread" in seen[0]
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen[-1] == "entered"  # released after the outer block


def test_scratch_names_say_who_writes_them_and_stale_ones_of_dead_processes_go(tmp_path):
    target = tmp_path / "weights.npz"
    mine = scratch_path(target)
    assert mine.parent == tmp_path and mine != scratch_path(target)  # a fresh token each time
    match = re.fullmatch(r"weights\.npz\.part-(.+)-(\d+)-([0-9a-f]{8})", mine.name)
    assert match and int(match[2]) == os.getpid()
    writer = mine.name.rsplit("-", 2)[0]  # weights.npz.part-<this host>
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{writer}-{int(done.stdout)}-00ff00ff"
    dead_folder = tmp_path / f"{writer}-{int(done.stdout)}-11ff00ff"
    alive = tmp_path / f"{writer}-{os.getpid()}-22ff00ff"
    other_host = tmp_path / f"weights.npz.part-elsewhere-{int(done.stdout)}-33ff00ff"
    other_file = tmp_path / f"other.npz.part-{writer.split('.part-')[1]}-{int(done.stdout)}-44ff00ff"
    for path in (dead, alive, other_host, other_file, target):
        path.write_bytes(b"x")
    (dead_folder / "inner").mkdir(parents=True)
    assert sorted(remove_stale_scratch(target)) == sorted([dead, dead_folder])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, other_host, other_file, target))
    assert remove_stale_scratch(tmp_path / "missing" / "x") == []
