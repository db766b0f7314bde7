"""Classification losses beyond the default BCE (``bce``: the label-summed
BCE of the papers' equations), as Keras ``Loss`` classes on
(multi-hot labels, logits) that a config passes to the classifier
(``mltf.train.loss = @mltf.losses.<Name>()``); every method uses the
classifier's loss as its classification term.

``MODULES`` lists the modules of this package; ``load_all`` imports them so
gin knows their classes before it parses a config. A new loss is a module
here with a class decorated ``@keras.saving.register_keras_serializable(
package="mltf")`` (so saved models load) and ``@gin.configurable(
module="mltf.losses")``, plus its name in ``MODULES``.
"""

import importlib

MODULES = ("bce",)


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"mltf.losses.{name}")
