"""Datasets for training and evaluation: tensorflow-datasets or offline copies."""

from keras_er.data.pipeline import NORMALIZATION
from keras_er.data.pipeline import ImageBatches
from keras_er.data.pipeline import load
from keras_er.data.pipeline import pad_crop_flip
from keras_er.data.sources import DATASETS
from keras_er.data.sources import DatasetNotFoundError
from keras_er.data.sources import load_arrays
from keras_er.data.specs import DATASET_SPECS
from keras_er.data.specs import DatasetSpec
from keras_er.data.specs import register_dataset

__all__ = [
    "DATASETS", "DATASET_SPECS", "DatasetNotFoundError", "DatasetSpec", "ImageBatches",
    "NORMALIZATION", "load", "load_arrays", "pad_crop_flip", "register_dataset",
]
