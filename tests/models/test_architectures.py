import keras
import numpy as np
import pytest

from keras_er import models


def kernel_sizes(model):
    return [
        int(np.prod(layer.kernel.shape))
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet20_has_22_weight_tensors_and_270896_weights():
    sizes = kernel_sizes(models.resnet20())
    assert len(sizes) == 22
    assert sum(sizes) == 270_896


# Published trainable-parameter counts (He et al. 2016; the usual CIFAR VGG/ResNet18).
PUBLISHED = {
    "resnet20": (0.27e6, 0.01),
    "resnet32": (0.46e6, 0.02),
    "resnet44": (0.66e6, 0.02),
    "resnet56": (0.85e6, 0.01),
    "resnet110": (1.7e6, 0.02),
    "resnet18": (11.2e6, 0.01),
    "vgg16": (15.0e6, 0.03),
}


@pytest.mark.parametrize("arch", PUBLISHED)
def test_parameter_counts_match_the_published_ones(arch):
    published, tolerance = PUBLISHED[arch]
    count = trainable_count(models.ARCHITECTURES[arch]())
    assert abs(count - published) / published < tolerance, count


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet34", "resnet50", "vgg11", "vgg13", "vgg19"])
def test_large_architectures_build_with_expected_counts(arch):
    expected = {
        "resnet34": 21.28e6,
        "resnet50": 23.52e6,
        "vgg11": 9.23e6,
        "vgg13": 9.41e6,
        "vgg19": 20.04e6,
    }[arch]
    assert abs(trainable_count(models.ARCHITECTURES[arch]()) - expected) / expected < 0.01


def test_input_shape_classes_and_imagenet_stem():
    model = models.resnet20(input_shape=(28, 28, 1), classes=7)
    out = model(np.zeros((2, 28, 28, 1), "float32"))
    assert tuple(out.shape) == (2, 7)
    stem = models.resnet18(input_shape=(64, 64, 3), imagenet_stem=True)
    assert stem.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    assert stem.get_layer("stage1_block1_1_conv").output.shape[1] == 16


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: models.resnet_cifar(21), "6n \\+ 2"),
        (lambda: models.resnet(101), "18, 34, 50"),
        (lambda: models.vgg(17), "11, 13, 16, 19"),
        (lambda: models.resnet20(input_shape=(32, 32)), "`input_shape`"),
        (lambda: models.vgg16(classes=0), "`classes`"),
    ],
)
def test_bad_arguments_raise_named_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
