"""``mltf.train.method = "bce"``: the baseline, the classifier trained alone
with binary cross-entropy (``MultiLabelClassifier``). The contract's
defaults are exactly this method."""

from mltf.methods.base import Method


class BCE(Method):
    """The BCE baseline.

    Args:
      (none: no options of its own; the classifier's are ``mltf.train``'s.)
    """

    name = "bce"


METHOD = BCE()
