"""Datasets for training and evaluation: offline copies, else a download through Keras.

`DATASETS` (names) and `NORMALIZATION` (name -> (mean, std)) are live views of
`DATASET_SPECS`, so they include datasets added later with `register_dataset`.
The registry loads without keras; the loaders load on first use.
"""

import importlib

from keras_er.data.errors import DatasetDownloadError
from keras_er.data.errors import DatasetNotFoundError
from keras_er.data.specs import DATASET_SPECS
from keras_er.data.specs import DATASETS
from keras_er.data.specs import NORMALIZATION
from keras_er.data.specs import DatasetSpec
from keras_er.data.specs import DownloadSource
from keras_er.data.specs import RemoteFile
from keras_er.data.specs import register_dataset
from keras_er.data.specs import unregister_dataset

_LOADERS = {
    "ImageBatches": "keras_er.data.pipeline",
    "load": "keras_er.data.pipeline",
    "pad_crop_flip": "keras_er.data.pipeline",
    "load_arrays": "keras_er.data.sources",
}

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "NORMALIZATION",
    "DatasetDownloadError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "DownloadSource",
    "RemoteFile",
    "register_dataset",
    "unregister_dataset",
    *_LOADERS,
]


def __getattr__(name):
    if name in _LOADERS:
        return getattr(importlib.import_module(_LOADERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
