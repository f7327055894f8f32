"""Dense Keras 3 Functional builders; the zoo sparsifies them."""

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

ARCHITECTURES = {
    builder.__name__: builder
    for builder in (
        resnet20, resnet32, resnet44, resnet56, resnet110,
        resnet18, resnet34, resnet50,
        vgg11, vgg13, vgg16, vgg19,
    )
}
