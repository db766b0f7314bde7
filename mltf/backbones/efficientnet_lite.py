"""EfficientNet-Lite0/1/2 in Keras: the architecture.

EfficientNet-Lite (Google's mobile variant of EfficientNet) differs from
EfficientNet-B*: no squeeze-and-excitation, ReLU6 instead of swish, and the
stem (32 filters) and head (1280 filters, and the first and last stages'
repeats) are not scaled with the width and depth coefficients. Convolutions
use TensorFlow's ``"same"`` padding (the extra row and column of a stride-2
convolution go at the bottom and right), batch normalization uses
epsilon 1e-3 and momentum 0.99, and the input is ``(x - 127) / 128`` of RGB
in [0, 255]. The model rescales inside, so it takes RGB in [0, 255] like
keras.applications' EfficientNet (preprocessing ``"none"``).

Layer names follow the PyTorch module order of the published weights, so
``block{i}_*`` is ``_blocks.{i}``: ``stem_conv``/``stem_bn``,
``block{i}_expand_conv``/``_expand_bn`` (absent when the expansion ratio is
1), ``block{i}_dwconv``/``_dwbn``, ``block{i}_project_conv``/``_project_bn``,
``top_conv``/``top_bn``, then ``predictions`` with the ImageNet head.

The ImageNet weights and their conversion live in
``mltf.backbones.weights.efficientnet_lite`` (it imports this module, never
the reverse); the backbones are registered in ``mltf.backbones.lite``.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence

import keras

from mltf.backbones.pooling import check_pooling, global_pooling

# The input scaling the TensorFlow checkpoints were trained with
# (efficientnet_lite_builder: MEAN_RGB = 127, STDDEV_RGB = 128).
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
IMAGENET_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size.

    Args:
        width: the width coefficient (filters of every stage but the stem
            and head).
        depth: the depth coefficient (repeats of every stage but the first
            and last).
        resolution: the ImageNet training and evaluation image side.
        dropout: the dropout rate before the ImageNet head.
    """

    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: Dict[str, LiteVariant] = {
    f"efficientnet_lite{i}": LiteVariant(width, depth, resolution, dropout)
    for i, (width, depth, resolution, dropout) in enumerate([
        (1.0, 1.0, 224, 0.2),
        (1.0, 1.1, 240, 0.2),
        (1.1, 1.2, 260, 0.3),
    ])
}

# Per stage: (repeats, kernel, stride, expansion, input filters, output
# filters), before scaling (efficientnet_lite_builder's block strings).
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def get_variant(name: str) -> LiteVariant:
    """The variant called ``name``, or a ``ValueError`` listing them.

    Args:
        name: ``efficientnet_lite0``, ``efficientnet_lite1`` or
            ``efficientnet_lite2``.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; "
                         f"available: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales ``filters`` by ``width`` to a multiple of ``divisor``, never
    more than 10% below the exact product (the TensorFlow builder's rule).

    Args:
        filters: the unscaled number of filters.
        width: the width coefficient.
        divisor: the multiple to round to.
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


@dataclasses.dataclass(frozen=True)
class BlockArgs:
    """One inverted-residual block after scaling.

    Args:
        kernel: depthwise kernel size.
        stride: depthwise stride.
        expansion: expansion ratio (1: no expansion convolution).
        filters_in: input channels.
        filters_out: output channels.
    """

    kernel: int
    stride: int
    expansion: int
    filters_in: int
    filters_out: int

    @property
    def residual(self) -> bool:
        """Whether the block adds its input (same shape in and out)."""
        return self.stride == 1 and self.filters_in == self.filters_out


def block_args(name: str) -> List[BlockArgs]:
    """The scaled blocks of variant ``name``, in order (``_blocks.i``).

    Args:
        name: ``efficientnet_lite0``, ``efficientnet_lite1`` or
            ``efficientnet_lite2``.
    """
    variant = get_variant(name)
    blocks = []
    last = len(_STAGES) - 1
    for i, (repeats, kernel, stride, expansion, f_in, f_out) in enumerate(
            _STAGES):
        f_in = round_filters(f_in, variant.width)
        f_out = round_filters(f_out, variant.width)
        if i == 0:
            f_in = STEM_FILTERS  # the stem is not scaled
        if i not in (0, last):  # Lite keeps the first and last repeats
            repeats = int(math.ceil(variant.depth * repeats))
        for r in range(repeats):
            blocks.append(BlockArgs(kernel, stride if r == 0 else 1,
                                    expansion, f_in if r == 0 else f_out,
                                    f_out))
    return blocks


def _conv_bn(x, filters, kernel, stride, prefix, *, depthwise=False,
             activation=True):
    """Convolution (no bias, ``"same"``), BatchNorm and optionally ReLU6."""
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=stride,
                                         padding="same", use_bias=False,
                                         name=f"{prefix}conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=stride,
                                padding="same", use_bias=False,
                                name=f"{prefix}conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON,
                                        momentum=BN_MOMENTUM,
                                        name=f"{prefix}bn")(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=f"{prefix}relu")(x)
    return x


def efficientnet_lite(name: str, input_shape: Sequence[Optional[int]] = None,
                      *, include_top: bool = False,
                      classes: int = IMAGENET_CLASSES,
                      classifier_activation: Optional[str] = "softmax",
                      pooling: Optional[str] = "avg",
                      dropout: Optional[float] = None,
                      drop_connect_rate: float = 0.2,
                      include_preprocessing: bool = True,
                      model_name: Optional[str] = None) -> keras.Model:
    """Builds EfficientNet-Lite ``name`` as a functional ``keras.Model``.

    Args:
        name: ``efficientnet_lite0``, ``efficientnet_lite1`` or
            ``efficientnet_lite2``.
        input_shape: ``(height, width, 3)``; default the variant's ImageNet
            resolution. Sides may be None.
        include_top: add global average pooling, dropout and the
            ``classes``-way Dense ``predictions`` layer (the ImageNet head
            when ``classes=1000``).
        classes: the head's size (with ``include_top``).
        classifier_activation: the head's activation (None for logits).
        pooling: without the top, ``"avg"``/``"max"`` global pooling to
            ``[batch, 1280]``, or None for the ``[batch, h, w, 1280]`` map.
            The top always averages, as the ImageNet head was trained.
        dropout: the rate before the head; default the variant's (0.2, 0.2,
            0.3).
        drop_connect_rate: the stochastic-depth rate of the last block
            (block ``i`` of ``n`` drops its residual branch with rate
            ``drop_connect_rate * i / n`` in training, as in the reference).
        include_preprocessing: rescale ``[0, 255]`` RGB to ``(x - 127) /
            128`` inside the model; False takes already-scaled input.
        model_name: the model's name; default ``name``.

    Returns:
        The model: images to features (or class scores with the top).
    """
    variant = get_variant(name)
    if input_shape is None:
        input_shape = (variant.resolution, variant.resolution, 3)
    check_pooling(pooling)
    if not 0.0 <= drop_connect_rate < 1.0:
        raise ValueError(f"drop_connect_rate must be in [0, 1), got "
                         f"{drop_connect_rate}")
    dropout = variant.dropout if dropout is None else float(dropout)
    inputs = keras.layers.Input(shape=tuple(input_shape), name="images")
    x = inputs
    if include_preprocessing:
        x = keras.layers.Rescaling(1.0 / INPUT_STD,
                                   offset=-INPUT_MEAN / INPUT_STD,
                                   name="rescaling")(x)
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem_")
    blocks = block_args(name)
    for i, args in enumerate(blocks):
        shortcut = x
        expanded = args.filters_in * args.expansion
        if args.expansion != 1:
            x = _conv_bn(x, expanded, 1, 1, f"block{i}_expand_")
        x = _conv_bn(x, expanded, args.kernel, args.stride, f"block{i}_dw",
                     depthwise=True)
        x = _conv_bn(x, args.filters_out, 1, 1, f"block{i}_project_",
                     activation=False)
        if args.residual:
            rate = drop_connect_rate * i / len(blocks)
            if rate > 0:
                # One draw per example: the whole residual branch is dropped.
                x = keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1),
                                         name=f"block{i}_drop")(x)
            x = keras.layers.Add(name=f"block{i}_add")([x, shortcut])
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top_")
    # The ImageNet head was trained on averaged features, whatever `pooling`.
    x = global_pooling(x, "avg" if include_top else pooling)
    if include_top:
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(int(classes), activation=classifier_activation,
                               name="predictions")(x)
    return keras.Model(inputs, x, name=model_name or name)

