"""Quiet TensorFlow's start-up notices for the command line.

Keras imports TensorFlow whenever it is installed, on the JAX and torch
backends too (to serialise a layer's config, for one), and TensorFlow's C++
runtime writes notices (oneDNN, CPU instructions, "All log messages before
absl::InitializeLog() is called") straight to file descriptor 2 while its
libraries load. `TF_CPP_MIN_LOG_LEVEL` quiets what TensorFlow logs later, but
not these: absl writes them before TensorFlow reads its level. `quiet()` sets
the level and also points descriptor 2 at the null device while `import
tensorflow` runs, and only then; an exception raised by that import still
reaches the user. Nothing here imports TensorFlow or changes how it computes.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys

LEVEL = "2"  # TensorFlow's C++ logs: errors only
_set_here = []  # whether quiet() set TF_CPP_MIN_LOG_LEVEL in this process


def quiet(module="tensorflow"):
    """Hide `module`'s import-time output on descriptor 2 and TensorFlow's INFO/WARNING logs.

    Does nothing when the user set `TF_CPP_MIN_LOG_LEVEL` (they chose what to
    see) or `module` is already imported. Call it before keras is imported;
    returns whether it changed anything.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or module in sys.modules:
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = LEVEL
    _set_here.append(True)
    sys.meta_path.insert(0, _SilentImport(module))
    return True


def for_child(environ):
    """`environ` without the level `quiet()` set, so that a child `keras-er` quiets its own start-up."""
    if _set_here and environ.get("TF_CPP_MIN_LOG_LEVEL") == LEVEL:
        return {key: value for key, value in environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return dict(environ)


class _SilentImport(importlib.abc.MetaPathFinder):
    """Finds `name` with the other finders and makes its first import run with descriptor 2 silenced.

    A lookup alone (`importlib.util.find_spec`, as torch does) imports nothing,
    so the finder stays in place until the module is executed.
    """

    def __init__(self, name):
        self.name = name
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and hasattr(spec.loader, "exec_module"):
            self._silence_once(spec.loader)
        return spec

    def _silence_once(self, loader):
        """Make `loader.exec_module` run silenced, and the import plain from then on."""

        def exec_module(module):
            del loader.exec_module  # the class's method again
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            with _descriptor_2_to_null():
                loader.exec_module(module)

        loader.exec_module = exec_module


@contextlib.contextmanager
def _descriptor_2_to_null():
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a windowed process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
