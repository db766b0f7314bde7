"""Classification losses beyond the default BCE (``bce``: the label-summed
BCE of the papers' equations; ``asymmetric``: ASL, Ben-Baruch et al. 2021;
``focal``: Lin et al. 2017), as Keras ``Loss`` classes on
(multi-hot labels, logits) that a config passes to the classifier
(``mltf.train.loss = @mltf.losses.<Name>()``); every method uses the
classifier's loss as its classification term.

``MODULES`` lists the loss modules of this package; ``load_all`` imports
them so gin knows their classes before it parses a config. ``base`` holds
what the element-wise losses share: a ``label_reduction`` (``"mean"`` or
``"sum"`` over the labels, then the batch mean of every Keras loss) that
must match the classifier's (``MultiLabelClassifier.set_loss`` checks it).
A new loss is a module here with a class decorated ``@keras.saving.register_keras_serializable(
package="mltf")`` (so saved models load) and ``@gin.configurable(
module="mltf.losses")``, plus its name in ``MODULES``.
"""

import importlib

MODULES = ("bce", "asymmetric", "focal")


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"mltf.losses.{name}")
