"""Per-backbone input scaling, as TF ops usable inside ``tf.data``.

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
"""

import tensorflow as tf

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("caffe", "tf", "torch", "unit", "none")

# The mode each registered backbone expects.
BACKBONE_MODES = {
    "vgg16": "caffe",
    "resnet50": "caffe",
    "resnet101": "caffe",
    "resnet152": "caffe",
    "inception_v3": "tf",
    "mobilenet_v3_small": "none",
    "efficientnet_b0": "none",
    # EfficientNet-Lite rescales to (x - 127) / 128 inside the model.
    "efficientnet_lite0": "none",
    "efficientnet_lite1": "none",
    "efficientnet_lite2": "none",
    "small_cnn": "unit",
    "mlp": "none",  # feature vectors: no image scaling
}


def mode_for(backbone_or_mode: str) -> str:
    """The mode for a backbone name, or the mode itself."""
    if backbone_or_mode in MODES:
        return backbone_or_mode
    if backbone_or_mode in BACKBONE_MODES:
        return BACKBONE_MODES[backbone_or_mode]
    raise ValueError(f"unknown preprocessing {backbone_or_mode!r}: use a mode "
                     f"({', '.join(MODES)}) or a backbone "
                     f"({', '.join(sorted(BACKBONE_MODES))})")


def preprocess(images, mode: str = "none"):
    """Scales float RGB images in [0, 255] (any leading dims) for ``mode``
    (a mode or a backbone name)."""
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
