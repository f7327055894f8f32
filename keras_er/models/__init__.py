"""Dense Keras 3 Functional builders; the zoo sparsifies them.

`ARCHITECTURES` (from `keras_er.architectures`) names them all, registered ones too.
"""

from keras_er.models.resnet import resnet
from keras_er.models.resnet import resnet18
from keras_er.models.resnet import resnet34
from keras_er.models.resnet import resnet50
from keras_er.models.resnet_cifar import resnet20
from keras_er.models.resnet_cifar import resnet32
from keras_er.models.resnet_cifar import resnet44
from keras_er.models.resnet_cifar import resnet56
from keras_er.models.resnet_cifar import resnet110
from keras_er.models.resnet_cifar import resnet_cifar
from keras_er.models.vgg import vgg
from keras_er.models.vgg import vgg11
from keras_er.models.vgg import vgg13
from keras_er.models.vgg import vgg16
from keras_er.models.vgg import vgg19

from keras_er.architectures import ARCHITECTURES  # noqa: E402  (the registry, keras-free)
from keras_er.architectures import register_architecture  # noqa: E402
