"""What gin must know before it parses a config: the Keras objects that
configs reference (``@keras.optimizers.Adam()``), and every configurable of
the layers below (backbones, methods, the input pipeline)."""

import gin
import keras

EXTERNALS = (
    ("keras.optimizers", ("Adam", "AdamW", "SGD", "RMSprop")),
    ("keras.optimizers.schedules", ("CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay")),
    ("keras.callbacks", ("ReduceLROnPlateau", "EarlyStopping")),
)


def register_externals() -> None:
    from mltf.core.optimizers import CoupledDecaySGD
    try:
        gin.external_configurable(CoupledDecaySGD, module="mltf.optimizers")
    except ValueError:
        pass  # registered already
    for module, names in EXTERNALS:
        obj = keras
        for part in module.split(".")[1:]:
            obj = getattr(obj, part)
        for name in names:
            try:
                gin.external_configurable(getattr(obj, name), module=module)
            except ValueError:
                pass  # registered already (module imported twice)


def register_all() -> None:
    """Imports every module with gin configurables."""
    import pipelines  # noqa: F401  (pipelines.InputConfig)
    from mltf import backbones, losses, methods  # noqa: F401  (mltf.build_backbone)
    losses.load_all()
    methods.load_all()  # mltf.build_critic, build_wgan, build_retdm
    from mltf.training import trainer  # noqa: F401  (mltf.train)


def in_scope(optimizer):
    """A copy of ``optimizer`` made in the current strategy scope: gin builds
    the configured optimizers before ``train`` runs, outside the scope, and an
    optimizer keeps the strategy it was made in."""
    return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))


register_externals()
