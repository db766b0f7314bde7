"""Old import path of EfficientNet-Lite, kept for user code (the README
showed ``from mltf import efficientnet_lite``): the architecture now lives in
``mltf.backbones.efficientnet_lite``, its ImageNet weights in
``mltf.backbones.weights.efficientnet_lite``."""

from mltf.backbones.efficientnet_lite import (  # noqa: F401
    VARIANTS, BlockArgs, LiteVariant, block_args, efficientnet_lite,
    round_filters)
from mltf.backbones.weights.efficientnet_lite import (  # noqa: F401
    PACKAGES, WeightPackageMissingError, assign_torch_state_dict,
    convert_imagenet_weights, imagenet_file_name, imagenet_model,
    load_imagenet_weights, package_state_dict_path)
