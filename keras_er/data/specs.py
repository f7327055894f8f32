"""What keras_er knows about each dataset, in one registry.

A `DatasetSpec` names a dataset's image shape, class count, per-channel
normalisation (pixel units, 0-255), whether the CIFAR augmentation applies and,
optionally, how Keras downloads and caches it (`DownloadSource`). Loading,
validation, downloading, the CLI's choices and model building all read
`DATASET_SPECS` (a `keras_er.registry.Registry`: the built-in datasets are
protected, a name already taken is refused); `register_dataset` adds one (its
arrays then come from `$KERAS_ER_DATA/<name>.npz`, or from its download source
if it gives one) and `unregister_dataset` removes it.

`DATASETS` (the names) and `NORMALIZATION` (name -> (mean, std)) are live
read-only views of the registry, so they include datasets registered later.

This module imports neither keras nor numpy: it is plain facts.

Examples:
    >>> DATASET_SPECS["cifar10"].classes
    10
    >>> register_dataset(DatasetSpec("tiny", (8, 8, 1), 2, (127.5,), (127.5,)))
    DatasetSpec(name='tiny', shape=(8, 8, 1), classes=2, mean=(127.5,), std=(127.5,), augment=False, download=None,
    class_names=None)
    >>> class_names("cifar10")[:3], class_names("tiny")
    (('airplane', 'automobile', 'bird'), ('0', '1'))
    >>> "tiny" in DATASETS, NORMALIZATION["tiny"]
    (True, ((127.5,), (127.5,)))
    >>> unregister_dataset("tiny")
"""

import dataclasses
from collections.abc import Mapping
from collections.abc import Sequence

from keras_er.data.remote import DOWNLOAD_FORMATS  # noqa: F401 (re-exported)
from keras_er.data.remote import DownloadSource  # noqa: F401 (re-exported)
from keras_er.data.remote import RemoteFile  # noqa: F401 (re-exported)
from keras_er.registry import Registry


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple  # (height, width, channels)
    classes: int
    mean: tuple  # per channel, training split, pixel units
    std: tuple
    augment: bool = False  # pad-4 crop + flip on the training split
    download: DownloadSource | None = None  # None: offline copies only
    class_names: tuple | None = None  # label i is class_names[i]; None: the labels' numbers


class _DatasetNames(Sequence):
    """The registered names, in registration order, read at each use (a live tuple)."""

    def __getitem__(self, index):
        return tuple(DATASET_SPECS)[index]

    def __len__(self):
        return len(DATASET_SPECS)

    def __contains__(self, name):
        return name in DATASET_SPECS

    def __eq__(self, other):
        return isinstance(other, (tuple, _DatasetNames)) and tuple(self) == tuple(other)

    def __repr__(self):
        return repr(tuple(self))


class _Normalization(Mapping):
    """name -> (mean, std) of every registered dataset, read at each use (a live dict)."""

    def __getitem__(self, name):
        spec = DATASET_SPECS[name]
        return spec.mean, spec.std

    def __iter__(self):
        return iter(tuple(DATASET_SPECS))

    def __len__(self):
        return len(DATASET_SPECS)

    def __repr__(self):
        return repr(dict(self))


DATASETS = _DatasetNames()
NORMALIZATION = _Normalization()


def register_dataset(spec):
    """Add `spec` to `DATASET_SPECS` under `spec.name` (a name already taken is refused); return it."""
    if not isinstance(spec, DatasetSpec):  # before the name is read; the registry checks the rest
        raise TypeError(f"`spec` must be a DatasetSpec; got {type(spec).__name__}.")
    DATASET_SPECS.register(spec.name, spec)
    return spec


def unregister_dataset(name):
    """Remove a dataset added with `register_dataset` (built-in ones stay)."""
    DATASET_SPECS.unregister(name)


def _check_spec(kind, spec):
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"`spec` must be a DatasetSpec; got {type(spec).__name__}.")
    if len(spec.shape) != 3 or len(spec.mean) != spec.shape[-1] or len(spec.std) != spec.shape[-1]:
        raise ValueError(
            f"DatasetSpec {spec.name!r}: `shape` must be (height, width, channels) with one "
            f"mean and std per channel; got shape={spec.shape}, mean={spec.mean}, std={spec.std}."
        )
    if spec.class_names is not None and len(spec.class_names) != spec.classes:
        raise ValueError(
            f"DatasetSpec {spec.name!r}: `class_names` must name each of its {spec.classes} classes; "
            f"got {len(spec.class_names)} names."
        )
    if spec.download is not None and not isinstance(spec.download, DownloadSource):
        raise TypeError(
            f"DatasetSpec {spec.name!r}: `download` must be a DownloadSource or "
            f"None; got {type(spec.download).__name__}."
        )


def get_spec(name):
    """The spec of `name`, or a ValueError listing the known datasets."""
    return DATASET_SPECS.lookup(name, "dataset")


def class_names(name):
    """The class names of dataset `name`, label order; "0", "1", ... where its spec has none."""
    spec = get_spec(name)
    return tuple(spec.class_names) if spec.class_names else tuple(str(label) for label in range(spec.classes))


# Download facts as `keras.datasets.<name>.load_data()` (Keras 3.15) has them:
# same URLs, hashes and cache names, so either one reuses the other's download.
_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR10 = DownloadSource(
    (
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            "cifar-10-batches-py-target",
            extract=True,
        ),
    ),
    "cifar10",
)
_CIFAR100 = DownloadSource(
    (
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
            "cifar-100-python-target",
            extract=True,
        ),
    ),
    "cifar100",
)
_MNIST = DownloadSource(
    (
        RemoteFile(
            _KERAS_DATASETS + "mnist.npz",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
            "mnist.npz",
        ),
    ),
    "npz",
)
_FASHION_MNIST = DownloadSource(
    tuple(
        RemoteFile(_KERAS_DATASETS + fname, None, fname, cache_subdir="datasets/fashion-mnist")
        for fname in (
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        )
    ),
    "idx",
)

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# cifar-100-python/meta's fine_label_names (alphabetical), the labels the reader loads.
_CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
    tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()
)
_FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_BUILT_IN = (
    DatasetSpec(
        "cifar10", (32, 32, 3), 10, (125.31, 122.95, 113.87), (62.99, 62.09, 66.70), True, _CIFAR10, _CIFAR10_CLASSES
    ),
    DatasetSpec(
        "cifar100",
        (32, 32, 3),
        100,
        (129.30, 124.07, 112.43),
        (68.17, 65.39, 70.42),
        True,
        _CIFAR100,
        _CIFAR100_CLASSES,
    ),
    DatasetSpec(
        "fashion_mnist",
        (28, 28, 1),
        10,
        (72.94,),
        (90.02,),
        download=_FASHION_MNIST,
        class_names=_FASHION_MNIST_CLASSES,
    ),
    DatasetSpec("mnist", (28, 28, 1), 10, (33.32,), (78.57,), download=_MNIST),
)
for _spec in _BUILT_IN:
    _check_spec("dataset", _spec)
DATASET_SPECS = Registry("dataset", {spec.name: spec for spec in _BUILT_IN}, check_entry=_check_spec)
"""Dataset name -> `DatasetSpec`, built-in ones first."""
