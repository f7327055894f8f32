"""keras_er.files: atomic writes and folder locks."""

import threading

import pytest

from keras_er.files import FolderLockedError
from keras_er.files import atomic_write
from keras_er.files import folder_lock


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
