"""Global pooling of a backbone's last feature map, for every mltf-built
backbone (keras.applications pool inside their own constructors)."""

from typing import Optional

import keras

POOLINGS = ("avg", "max", None)


def check_pooling(pooling: Optional[str]) -> None:
    """Raises ``ValueError`` unless ``pooling`` is one of ``POOLINGS``.

    Args:
        pooling: ``"avg"``, ``"max"`` or None.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'avg', 'max' or None, got "
                         f"{pooling!r}")


def global_pooling(x, pooling: Optional[str]):
    """Applies ``pooling`` to a ``[batch, h, w, c]`` feature map.

    The layers are named ``avg_pool`` / ``max_pool`` as keras.applications
    names its own, so weight files and layer lookups agree across families.

    Args:
        x: the feature map.
        pooling: ``"avg"`` or ``"max"`` (to ``[batch, c]``), or None (``x``
            unchanged).
    """
    check_pooling(pooling)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
