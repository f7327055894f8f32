"""Dense Keras 3 Functional builders; the zoo sparsifies them.

`ARCHITECTURES` (from `keras_er.architectures`) names them all, registered ones too.
"""

from keras_er.architectures import ARCHITECTURES  # noqa: E402  (the registry, keras-free)
from keras_er.architectures import register_architecture  # noqa: E402
from keras_er.models.cifar_resnet import resnet20
from keras_er.models.cifar_resnet import resnet32
from keras_er.models.cifar_resnet import resnet44
from keras_er.models.cifar_resnet import resnet56
from keras_er.models.cifar_resnet import resnet110
from keras_er.models.cifar_resnet import resnet_cifar
from keras_er.models.resnet_blocks import resnet
from keras_er.models.resnet_blocks import resnet18
from keras_er.models.resnet_blocks import resnet34
from keras_er.models.resnet_blocks import resnet50
from keras_er.models.vgg_bn import vgg
from keras_er.models.vgg_bn import vgg11
from keras_er.models.vgg_bn import vgg13
from keras_er.models.vgg_bn import vgg16
from keras_er.models.vgg_bn import vgg19

__all__ = [
    "ARCHITECTURES",
    "register_architecture",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet_cifar",
    "vgg",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
]
