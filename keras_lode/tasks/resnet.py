"""ResNet-18-style image classifier (basic blocks, 4 stages) with widths small enough for a CPU."""

from __future__ import annotations

from keras_lode.tasks import datasets
from keras_lode.tasks.cnn import fmnist_data, image_task_data
from keras_lode.tasks.registry import example_task
from keras_lode.tasks.task import Task, TaskData


def build_resnet(
    seed: int = 0,
    input_shape=(28, 28, 1),
    classes: int = 10,
    width: int = 16,
    blocks=(2, 2, 2, 2),
):
    """Builds a ResNet-18-style network: 3x3 stem, 4 stages of basic blocks, global pooling.

    With `width=64, blocks=(2, 2, 2, 2)` this is ResNet-18's layout for small images (no 7x7
    stem or max-pool, as is usual for 28-32 pixel inputs). Stage `i` has `width * 2**i`
    filters and stride 2 from the second stage on.

    Args:
        seed: unused (weights follow `keras.utils.set_random_seed`); kept for the builder API.
        input_shape: image shape, channels last.
        classes: number of classes.
        width: filters of the stem and the first stage.
        blocks: basic blocks per stage.

    Returns:
        An uncompiled `keras.Model` producing class probabilities.
    """
    import keras
    from keras import layers

    del seed
    if width <= 0 or not blocks or any(b <= 0 for b in blocks):
        raise ValueError(
            f"Arguments `width` and `blocks` must be positive. Received: width={width!r}, "
            f"blocks={blocks!r}"
        )

    # Momentum 0.9, not Keras' 0.99: CPU-scale runs take ~100 steps, too few for the
    # moving statistics to leave their initial values, and inference accuracy then stays
    # at chance.
    def conv_bn(x, filters, stride=1, relu=True):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input(shape=input_shape)
    x = conv_bn(inputs, width)
    for stage, n in enumerate(blocks):
        filters = width * 2**stage
        for b in range(n):
            stride = 2 if (stage > 0 and b == 0) else 1
            shortcut = x
            y = conv_bn(x, filters, stride)
            y = conv_bn(y, filters, relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
                shortcut = layers.BatchNormalization(momentum=0.9)(shortcut)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet18_style")


def _resnet_spec(name, scale, data, input_shape, classes, model_file) -> Task:
    common = dict(
        name=name,
        build=build_resnet,
        data=data,
        optimizer="adamw",
        weight_decay=5e-4,
        model_file=model_file,
        peak_lrs=(3e-4, 1e-3, 3e-3, 1e-2),
    )
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=64,
            points_per_epoch=2,
            model_args=dict(input_shape=input_shape, classes=classes, width=4, blocks=(1, 1)),
            data_args=dict(n_train=256, n_val=128, n_test=128),
            **common,
        )
    if scale == "cpu":
        # ResNet-18 at full width costs 2-5 s per batch on this CPU: one basic block per
        # stage (the ResNet-10 layout), width 8, on a 2k-image subset — small enough for a
        # sweep on 2 shared cores.
        return example_task(
            scale=scale,
            epochs=3,
            batch_size=64,
            points_per_epoch=5,
            model_args=dict(input_shape=input_shape, classes=classes, width=8, blocks=(1, 1, 1, 1)),
            data_args=dict(n_train=2000, n_val=500, n_test=1000),
            **common,
        )
    return example_task(
        scale=scale,
        epochs=15,
        batch_size=256,
        points_per_epoch=10,
        model_args=dict(input_shape=input_shape, classes=classes, width=64),
        data_args=dict(n_train=None, n_val=5000, n_test=None),
        **common,
    )


def fmnist_resnet(scale: str) -> Task:
    """ResNet-18 style on Fashion-MNIST (28x28x1)."""
    return _resnet_spec(
        "fmnist_resnet", scale, fmnist_data, (28, 28, 1), 10, "models/fmnist_resnet.npz"
    )


def _cifar_data(classes):
    def data(seed: int = 0, **kwargs) -> TaskData:
        return image_task_data(lambda: datasets.load_cifar(classes), seed=seed, **kwargs)

    return data


def cifar10_resnet(scale: str) -> Task:
    """ResNet-18 style on CIFAR-10 (needs `keras.datasets.cifar10`: cache or internet)."""
    return _resnet_spec("cifar10_resnet", scale, _cifar_data(10), (32, 32, 3), 10, None)


def cifar100_resnet(scale: str) -> Task:
    """ResNet-18 style on CIFAR-100 (needs `keras.datasets.cifar100`: cache or internet)."""
    return _resnet_spec("cifar100_resnet", scale, _cifar_data(100), (32, 32, 3), 100, None)
