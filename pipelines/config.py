"""Gin bindings for the input pipeline.

``InputConfig`` is registered with gin as ``pipelines.InputConfig``; configs
bind it in two scopes, ``train/`` and ``eval/``::

    pipelines.InputConfig.data_dir = "data/demo"
    train/pipelines.InputConfig.split = "train"
    train/pipelines.InputConfig.training = True
    eval/pipelines.InputConfig.split = "val"
    eval/pipelines.InputConfig.training = False

``input_configs()`` returns the pair. (Gin cannot decorate the dataclass
itself without changing it for everyone, hence the external registration.)
"""

from typing import Tuple

import gin

from pipelines.input import InputConfig

gin.external_configurable(InputConfig, module="pipelines")


def input_configs() -> Tuple[InputConfig, InputConfig]:
    """(train, eval) ``InputConfig``s from the gin bindings in force."""
    with gin.config_scope("train"):
        train = gin.get_configurable("pipelines.InputConfig")()
    with gin.config_scope("eval"):
        evaluation = gin.get_configurable("pipelines.InputConfig")()
    return train, evaluation
