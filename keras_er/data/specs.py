"""What keras_er knows about each dataset, in one registry.

A `DatasetSpec` names a dataset's image shape, class count, per-channel
normalisation (pixel units, 0-255) and whether the CIFAR augmentation applies.
Loading, validation, the CLI's choices and model building all read
`DATASET_SPECS`; `register_dataset` adds one (its arrays then come from
`$KERAS_ER_DATA/<name>.npz`).

Example:

>>> DATASET_SPECS["cifar10"].classes
10
>>> register_dataset(DatasetSpec("tiny", (8, 8, 1), 2, (127.5,), (127.5,)))
DatasetSpec(name='tiny', shape=(8, 8, 1), classes=2, mean=(127.5,), std=(127.5,), augment=False)
>>> del DATASET_SPECS["tiny"]
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple  # (height, width, channels)
    classes: int
    mean: tuple  # per channel, training split, pixel units
    std: tuple
    augment: bool = False  # pad-4 crop + flip on the training split


DATASET_SPECS = {}


def register_dataset(spec):
    """Add `spec` to `DATASET_SPECS` (replacing one of the same name); return it."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"`spec` must be a DatasetSpec; got {type(spec).__name__}.")
    if len(spec.shape) != 3 or len(spec.mean) != spec.shape[-1] or len(spec.std) != spec.shape[-1]:
        raise ValueError(
            f"DatasetSpec {spec.name!r}: `shape` must be (height, width, channels) with one "
            f"mean and std per channel; got shape={spec.shape}, mean={spec.mean}, std={spec.std}."
        )
    DATASET_SPECS[spec.name] = spec
    return spec


def get_spec(name):
    """The spec of `name`, or a ValueError listing the known datasets."""
    if name not in DATASET_SPECS:
        raise ValueError(
            f"Unknown dataset {name!r}; expected one of {', '.join(DATASET_SPECS)}."
        )
    return DATASET_SPECS[name]


for _spec in (
    DatasetSpec("cifar10", (32, 32, 3), 10, (125.31, 122.95, 113.87), (62.99, 62.09, 66.70), True),
    DatasetSpec("cifar100", (32, 32, 3), 100, (129.30, 124.07, 112.43), (68.17, 65.39, 70.42), True),
    DatasetSpec("fashion_mnist", (28, 28, 1), 10, (72.94,), (90.02,)),
    DatasetSpec("mnist", (28, 28, 1), 10, (33.32,), (78.57,)),
):
    register_dataset(_spec)
