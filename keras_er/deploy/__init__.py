"""Deployment files from (sparse) Keras models: `export` to LiteRT, ONNX and SavedModel.

`exporting` is the backend-neutral front (`keras_er.export`), `adapters` the
framework code per format, `support` the table of which backend writes which
format. The package loads `exporting` on first use, so the CLI reads
`support` without importing keras.
"""

import importlib

from keras_er.deploy.support import FORMATS
from keras_er.deploy.support import SUPPORT
from keras_er.deploy.support import refusal
from keras_er.deploy.support import support_table

__all__ = ["FORMATS", "SUPPORT", "ExportVerificationError", "export", "refusal", "support_table"]


def __getattr__(name):
    if name in ("export", "ExportVerificationError"):
        return getattr(importlib.import_module("keras_er.deploy.exporting"), name)
    raise AttributeError(f"module 'keras_er.deploy' has no attribute {name!r}")
