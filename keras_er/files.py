"""Files that are never half-written, and folders one process at a time.

`atomic_write(path)` yields a temporary path beside `path` and renames it over
`path` only when the block finishes: a kill leaves the old file or the new one,
never a truncated one. `folder_lock(folder)` holds an exclusive advisory lock
(`fcntl.flock` on `<folder>/.lock`) so two exporters or two trainings cannot
interleave their writes; it is re-entrant within a thread, and other threads
of the same process are held off like other processes.

`scratch_path(path)` names a scratch file or folder beside `path` after its
writer, `<name>.part-<host>-<pid>-<token>`, so that a process killed mid-write
(SIGKILL runs no `finally`) leaves a name that `remove_stale_scratch(path)`
recognises and removes later, once no process of that id runs on this host.

Examples:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with folder_lock(folder), atomic_write(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("whole")
    >>> (folder / "a.txt").read_text()
    'whole'
"""

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; writes stay atomic
    fcntl = None

_held = {}  # (thread id, resolved lock path) -> (file handle, depth)
_held_guard = threading.Lock()


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock."""


def sha256_of(path):
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _host():
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def scratch_path(path):
    """A fresh scratch name beside `path`: `<name>.part-<host>-<pid>-<token>` (a random 8-hex token)."""
    path = Path(path)
    return path.with_name(f"{path.name}.part-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")


def _running(pid):
    """Whether a process `pid` runs on this host (True when that cannot be told)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    return True


def remove_stale_scratch(path):
    """Remove the `scratch_path(path)` leftovers of processes of this host that no longer run.

    Scratch names of running processes, of other hosts (a shared folder) and
    anything else are left alone. Returns the removed paths.
    """
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.part-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except FileNotFoundError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if not match or match["host"] != _host() or _running(int(match["pid"])):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path, text):
    with atomic_write(path) as temporary:
        temporary.write_text(text)


@contextlib.contextmanager
def folder_lock(folder, wait=True, purpose="in use"):
    """Hold `<folder>/.lock` exclusively while inside.

    Args:
        folder: the folder to lock (created if missing).
        wait: True waits for the lock; False raises `FolderLockedError` at once.
        purpose: words for the error message ("training", "exporting").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = str((folder / ".lock").resolve())
    key = (threading.get_ident(), path)  # re-entrant per thread; other threads wait or fail
    with _held_guard:
        reentrant = key in _held
        if reentrant:
            handle, depth = _held[key]
            _held[key] = (handle, depth + 1)
    if reentrant:
        try:
            yield
        finally:
            _release(key)
        return
    handle = open(path, "a+")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            raise FolderLockedError(
                f"{folder} is {purpose} by another process or thread (it holds {path}); wait "
                "for it to finish or choose another folder."
            ) from None
        except OSError as error:  # a filesystem without flock (some network mounts)
            if error.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                handle.close()
                raise
            warnings.warn(
                f"{folder}: no file locks on this filesystem ({error}); concurrent writers are not held off.",
                stacklevel=3,
            )
    with _held_guard:
        _held[key] = (handle, 1)
    try:
        yield
    finally:
        _release(key)


def _release(key):
    with _held_guard:
        handle, depth = _held[key]
        if depth > 1:
            _held[key] = (handle, depth - 1)
            return
        del _held[key]
    handle.close()  # closing the file drops the flock


def json_text(value):
    """`value` as the JSON text keras_er writes (run folders, zoo entries, reports): indented by one space."""
    return json.dumps(value, indent=1)
