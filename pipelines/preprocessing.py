"""Input scaling modes, as TF ops usable inside ``tf.data``.

Input: float32 RGB in [0, 255] (what the augmentation ops return). Each mode
reproduces the matching ``keras.applications.<family>.preprocess_input``
(tests compare them), but as plain TF so it runs inside the input pipeline
on any backend:

- ``"caffe"``: RGB to BGR, minus the ImageNet channel means (VGG-16, ResNet).
- ``"tf"``: scale to [-1, 1] (Inception v3).
- ``"torch"``: [0, 1], then ImageNet mean / std per channel.
- ``"unit"``: [0, 1] (mltf's small CNNs).
- ``"none"``: unchanged, for backbones that rescale inside the model
  (keras.applications' MobileNetV3 and EfficientNet, mltf's
  EfficientNet-Lite).

Which mode a backbone expects is declared once, where the backbone is
registered (``mltf.backbones.register_backbone``); the pipeline knows no
backbone. Registering one calls ``register_alias(name, mode)``, so a backbone
name also works as a mode here once ``mltf.backbones`` is imported.
"""

from typing import Dict

import tensorflow as tf

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("caffe", "tf", "torch", "unit", "none")

# Other names for a mode: the registered backbones' names.
_ALIASES: Dict[str, str] = {}


def register_alias(name: str, mode: str) -> None:
    """Makes ``name`` (a backbone's) stand for ``mode`` in ``mode_for``.

    Args:
        name: the alias; must not be a mode itself.
        mode: one of ``MODES``.
    """
    if mode not in MODES:
        raise ValueError(f"preprocessing {mode!r} for {name!r} is not one of "
                         f"{', '.join(MODES)}")
    if name in MODES:
        raise ValueError(f"{name!r} is a preprocessing mode, not an alias")
    _ALIASES[name] = mode


def mode_for(backbone_or_mode: str) -> str:
    """The mode for a registered backbone name, or the mode itself.

    Args:
        backbone_or_mode: a mode of ``MODES`` or a name given to
            ``register_alias``.
    """
    if backbone_or_mode in MODES:
        return backbone_or_mode
    if backbone_or_mode in _ALIASES:
        return _ALIASES[backbone_or_mode]
    known = (f"registered backbones: {', '.join(sorted(_ALIASES))}"
             if _ALIASES else "no backbone registered: a backbone name needs "
             "`import mltf.backbones` first")
    raise ValueError(f"unknown preprocessing {backbone_or_mode!r}: use a mode "
                     f"({', '.join(MODES)}) or a registered backbone's name "
                     f"({known})")


def preprocess(images, mode: str = "none"):
    """Scales float RGB images in [0, 255] (any leading dims) for ``mode``.

    Args:
        images: RGB in [0, 255], any leading dimensions.
        mode: a mode or a registered backbone's name (see ``mode_for``).
    """
    mode = mode_for(mode)
    images = tf.cast(images, tf.float32)
    if mode == "none":
        return images
    if mode == "unit":
        return images / 255.0
    if mode == "tf":
        return images / 127.5 - 1.0
    if mode == "caffe":
        return tf.reverse(images, axis=[-1]) - tf.constant(_CAFFE_MEAN_BGR)
    # torch
    return (images / 255.0 - tf.constant(_TORCH_MEAN)) / tf.constant(_TORCH_STD)
