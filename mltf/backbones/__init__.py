"""Backbones: feature extractors from an input to pooled features.

``build_backbone(name, input_shape, ...)`` builds any registered backbone
(gin: ``mltf.build_backbone``); ``register_backbone`` adds one. The package by
role:

- ``registry``: ``BackboneSpec`` (builder, input scaling, minimum size,
  ImageNet file), ``register_backbone``, ``build_backbone``,
  ``preprocessing_mode``, weights loading and ``WeightsUnavailableError``.
- ``applications``: the keras.applications families (VGG-16, ResNet,
  Inception v3, MobileNetV3-Small, EfficientNet-B0).
- ``vgg``: ``vgg16_fc``, the papers' VGG-16 with fc6/fc7 and keras'
  include_top ImageNet file mapped by layer name.
- ``small``: ``small_cnn`` and ``mlp``, for CPU work.
- ``efficientnet_lite`` (the architecture) and ``lite`` (its registration).
- ``weights``: the keras cache folder, the numpy ``.pth`` reader and the
  EfficientNet-Lite weight conversion.
- ``feature_cache``: a frozen backbone run once over an image dataset.

Importing this package registers every built-in backbone, and with it each
backbone's name as an input-pipeline preprocessing alias.
"""

from mltf.backbones import applications, lite, small, vgg  # noqa: F401 (register)
from mltf.backbones.registry import (BACKBONES, INPUT_FEATURES, INPUT_IMAGE,
                                     BackboneSpec, WeightsUnavailableError,
                                     build_backbone, imagenet_weights_path,
                                     preprocessing_mode, register_backbone)

__all__ = ["BACKBONES", "INPUT_FEATURES", "INPUT_IMAGE", "BackboneSpec",
           "WeightsUnavailableError", "build_backbone", "imagenet_weights_path",
           "preprocessing_mode", "register_backbone"]
