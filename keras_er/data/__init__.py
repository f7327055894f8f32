"""Datasets for training and evaluation: offline copies, else a download through Keras.

`DATASETS` (names) and `NORMALIZATION` (name -> (mean, std)) are live views of
`DATASET_SPECS`, so they include datasets added later with `register_dataset`.
"""

from keras_er.data.pipeline import ImageBatches, load, pad_crop_flip
from keras_er.data.sources import (
    DatasetDownloadError,
    DatasetNotFoundError,
    load_arrays,
)
from keras_er.data.specs import (
    DATASET_SPECS,
    DATASETS,
    NORMALIZATION,
    DatasetSpec,
    DownloadSource,
    RemoteFile,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "NORMALIZATION",
    "DatasetDownloadError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "DownloadSource",
    "ImageBatches",
    "RemoteFile",
    "load",
    "load_arrays",
    "pad_crop_flip",
    "register_dataset",
]
