"""keras.applications backbones: VGG-16, ResNet-50/101/152, Inception v3,
MobileNetV3-Small and EfficientNet-B0, without their tops.

| name | source | feature_dim | min size | preprocessing |
|---|---|---|---|---|
| ``vgg16`` | ``keras.applications.VGG16`` | 512 | 32 | ``caffe`` |
| ``resnet50`` | ``keras.applications.ResNet50`` | 2048 | 32 | ``caffe`` |
| ``resnet101`` | ``keras.applications.ResNet101`` | 2048 | 32 | ``caffe`` |
| ``resnet152`` | ``keras.applications.ResNet152`` | 2048 | 32 | ``caffe`` |
| ``inception_v3`` | ``keras.applications.InceptionV3`` | 2048 | 75 | ``tf`` |
| ``mobilenet_v3_small`` | ``keras.applications.MobileNetV3Small`` | 576 | 32 | ``none`` |
| ``efficientnet_b0`` | ``keras.applications.EfficientNetB0`` | 1280 | 32 | ``none`` |

``vgg16`` is the pooled conv5 map; the papers' VGG-16 with fc6/fc7 is
``vgg16_fc`` (``mltf.backbones.vgg``).

``mobilenet_v3_small`` and ``efficientnet_b0`` rescale inside the model and
take RGB in [0, 255], hence ``none``. ``efficientnet_b0`` with ImageNet
weights: keras.applications adds an extra per-channel ``Rescaling`` after the
input ``Normalization`` layer when ``weights="imagenet"`` (and only then), so
the official weights file loaded any other way would normalise the input
wrongly. mltf folds that factor into the ``Normalization`` variance instead,
so the architecture is the same whatever the weights and a backbone saved
with ``save_weights`` reloads exactly (``_fold_efficientnet_imagenet_std``).

Their ImageNet weights come through keras' own download and cache; offline,
``build_backbone`` raises ``WeightsUnavailableError`` naming the file to
place (``imagenet_weights_path``).
"""

from typing import Callable

import keras
import numpy as np

from mltf.backbones.registry import register_backbone

# The ImageNet channel standard deviations (RGB) that EfficientNet's weights
# were trained with (keras.applications.efficientnet.IMAGENET_STDDEV_RGB).
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# Arguments build_backbone sets itself on keras.applications models.
_RESERVED_APPLICATION_KWARGS = ("include_top", "input_tensor", "classes",
                                "classifier_activation",
                                "include_preprocessing", "weights_name")


def _fold_efficientnet_imagenet_std(model: keras.Model) -> None:
    """Folds keras' ImageNet-only extra rescaling into EfficientNet's input
    ``Normalization`` when the official weights were just loaded.

    keras.applications' EfficientNet with ``weights="imagenet"`` computes
    ``(x / 255 - mean) / sqrt(variance)`` with ``variance = std**2`` from the
    weights file, then multiplies by ``1 / sqrt(std)`` (an extra layer it adds
    only for ``"imagenet"``). Here the model never has that layer; instead,
    when the loaded variance is the official ``std**2``, it becomes
    ``std**3``: the same outputs, and files saved from this model (already
    folded) reload unchanged.

    Args:
        model: an ``efficientnet_b0`` backbone with weights just loaded.
    """
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.Normalization)]
    if len(norms) != 1 or norms[0].input_mean is not None:
        return
    norm = norms[0]
    std = np.asarray(_IMAGENET_STD_RGB, dtype="float32")
    variance = keras.ops.convert_to_numpy(norm.adapt_variance)
    if variance.shape == std.shape and np.allclose(variance, std ** 2,
                                                   rtol=1e-3):
        norm.adapt_variance.assign(variance * std)
    norm.finalize_state()  # its mean/variance tensors are snapshots


def _application_builder(constructor: str, **fixed) -> Callable[..., keras.Model]:
    """A ``BackboneSpec.builder`` for ``keras.applications.<constructor>``.

    Args:
        constructor: the function's name in ``keras.applications``.
        **fixed: arguments always passed (e.g. ``include_preprocessing``).
    """

    def builder(input_shape, *, weights=None, pooling="avg", name=None,
                **kwargs):
        """Builds the no-top application and renames it.

        Args:
            input_shape: ``(height, width, channels)``.
            weights: None or ``"imagenet"``.
            pooling: ``"avg"``, ``"max"`` or None.
            name: the model name.
            **kwargs: further ``keras.applications`` arguments.
        """
        reserved = sorted(set(kwargs) & set(_RESERVED_APPLICATION_KWARGS))
        if reserved:
            raise ValueError(f"build_backbone sets {', '.join(reserved)} "
                             f"itself for backbone {name!r}; drop them")
        model = getattr(keras.applications, constructor)(
            include_top=False, weights=weights, input_shape=input_shape,
            pooling=pooling, **fixed, **kwargs)
        # A new functional model over the same layers, under mltf's name
        # (EfficientNet's own `name` argument also picks its weights file).
        return keras.Model(model.input, model.output, name=name)

    return builder


def _efficientnet_b0(input_shape, *, weights=None, pooling="avg", name=None,
                     **kwargs) -> keras.Model:
    """``keras.applications.EfficientNetB0`` without the ImageNet-only extra
    rescaling layer (see ``_fold_efficientnet_imagenet_std``).

    Args:
        input_shape: ``(height, width, 3)``.
        weights: None or ``"imagenet"``.
        pooling: ``"avg"``, ``"max"`` or None.
        name: the model name.
        **kwargs: further ``keras.applications.EfficientNetB0`` arguments.
    """
    build = _application_builder("EfficientNetB0")
    pretrained = None
    if weights == "imagenet":  # first: fails fast offline
        pretrained = build(input_shape, weights="imagenet", pooling=pooling,
                           name=name, **kwargs)
    model = build(input_shape, weights=None, pooling=pooling, name=name,
                  **kwargs)
    if pretrained is not None:
        model.set_weights(pretrained.get_weights())  # folded by after_load
    return model


def _mobilenet_v3_file(alpha=1.0, minimalistic=False, **unused) -> str:
    """The no-top ImageNet file of ``MobileNetV3Small`` (as keras names it).

    Args:
        alpha: the width multiplier.
        minimalistic: the minimalistic variant.
        **unused: other builder arguments.
    """
    variant = "_minimalistic" if minimalistic else ""
    return f"weights_mobilenet_v3_small{variant}_224_{alpha}_float_no_top_v2.h5"


def _tf_kernels_notop(prefix: str) -> str:
    """keras' no-top file name for VGG, ResNet and Inception v3.

    Args:
        prefix: the file name's model part, e.g. ``"resnet101"``.
    """
    return f"{prefix}_weights_tf_dim_ordering_tf_kernels_notop.h5"


register_backbone("vgg16", _application_builder("VGG16"),
                  preprocessing="caffe", min_size=32,
                  imagenet_file=_tf_kernels_notop("vgg16"))
for _depth in ("50", "101", "152"):
    register_backbone(f"resnet{_depth}", _application_builder(f"ResNet{_depth}"),
                      preprocessing="caffe", min_size=32,
                      imagenet_file=_tf_kernels_notop(f"resnet{_depth}"))
del _depth
register_backbone("inception_v3", _application_builder("InceptionV3"),
                  preprocessing="tf", min_size=75,
                  imagenet_file=_tf_kernels_notop("inception_v3"))
# Rescaling to [-1, 1] inside the model: takes [0, 255] ("none").
register_backbone("mobilenet_v3_small",
                  _application_builder("MobileNetV3Small",
                                       include_preprocessing=True),
                  preprocessing="none", min_size=32,
                  imagenet_file=_mobilenet_v3_file)
# Rescaling(1/255) + Normalization inside the model: takes [0, 255] ("none").
register_backbone("efficientnet_b0", _efficientnet_b0,
                  preprocessing="none", min_size=32,
                  imagenet_file="efficientnetb0_notop.h5",
                  after_load=_fold_efficientnet_imagenet_std)
