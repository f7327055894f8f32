"""The one library module that may ask a framework directly, for what Keras does not expose.

Everything else in `keras_er` is written against `keras` and `keras.ops`.
"""

import keras


def is_tracing():
    """True while torch is compiling or exporting the code that calls this.

    Eager torch code may read tensor values in Python (`int(k)`, `if pred:`);
    code being traced by `torch.compile`/`torch.export` must not. On the XLA
    backends code is traced anyway and never takes the eager path.
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    compiler = torch.compiler
    exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or exporting())
