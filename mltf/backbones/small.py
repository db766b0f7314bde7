"""mltf's own small backbones, for CPU work.

| name | input | feature_dim | preprocessing |
|---|---|---|---|
| ``small_cnn`` | images, any size | ``widths[-1]`` (128) | ``unit`` |
| ``mlp`` | feature vectors | ``hidden_sizes[-1]`` (256) | ``none`` |
"""

from typing import Sequence

import keras

from mltf.backbones.pooling import global_pooling
from mltf.backbones.registry import INPUT_FEATURES, register_backbone


def _small_cnn(input_shape, *, weights=None, pooling="avg", name="small_cnn",
               widths: Sequence[int] = (32, 64, 128),
               convs_per_block: int = 1, kernel_size: int = 3) -> keras.Model:
    """A small plain CNN for CPU work: per width, a stride-2 Conv2D +
    BatchNorm + ReLU (then ``convs_per_block - 1`` stride-1 ones), then global
    pooling. Takes images in [0, 1] (``unit``); each block halves the side.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: must be None (local files are loaded by ``build_backbone``).
        pooling: ``"avg"``, ``"max"`` or None.
        name: the model name.
        widths: the filters of each block; ``feature_dim = widths[-1]``.
        convs_per_block: convolutions per block (at least 1).
        kernel_size: the convolution kernel size.
    """
    if weights is not None:
        raise ValueError("small_cnn has no pretrained weights")
    if not widths or convs_per_block < 1:
        raise ValueError("small_cnn needs at least one width and "
                         "convs_per_block >= 1")
    inputs = keras.layers.Input(shape=input_shape, name="images")
    x = inputs
    for i, width in enumerate(widths, start=1):
        for j in range(1, convs_per_block + 1):
            x = keras.layers.Conv2D(int(width), kernel_size,
                                    strides=2 if j == 1 else 1,
                                    padding="same", use_bias=False,
                                    name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
    return keras.Model(inputs, global_pooling(x, pooling), name=name)


def _mlp(input_shape, *, weights=None, pooling=None, name="mlp",
         hidden_sizes: Sequence[int] = (256, 256), dropout: float = 0.1,
         activation: str = "relu") -> keras.Model:
    """A multilayer perceptron over feature vectors (e.g. MULAN ARFF): per
    hidden size a Dense layer with ``activation``, then Dropout.

    Args:
        input_shape: ``(feature_dim,)``.
        weights: must be None (local files are loaded by ``build_backbone``).
        pooling: ignored (the input is already a vector).
        name: the model name.
        hidden_sizes: the units of each Dense layer; ``feature_dim =
            hidden_sizes[-1]``.
        dropout: the dropout rate after each Dense layer (0 for none).
        activation: the Dense layers' activation.
    """
    del pooling
    if weights is not None:
        raise ValueError("mlp has no pretrained weights")
    if not hidden_sizes:
        raise ValueError("mlp needs at least one hidden size")
    inputs = keras.layers.Input(shape=input_shape, name="features")
    x = inputs
    for i, units in enumerate(hidden_sizes, start=1):
        x = keras.layers.Dense(int(units), activation=activation,
                               name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    return keras.Model(inputs, x, name=name)


register_backbone("small_cnn", _small_cnn, preprocessing="unit")
# Feature vectors: no image scaling.
register_backbone("mlp", _mlp, preprocessing="none", input_kind=INPUT_FEATURES)
