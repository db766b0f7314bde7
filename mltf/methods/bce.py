"""``mltf.train.method = "bce"``: the baseline, the classifier trained alone
with binary cross-entropy (``MultiLabelClassifier``). The contract's
defaults are exactly this method."""

from mltf.methods.base import Method


class BCE(Method):
    """The BCE baseline (no options of its own)."""

    name = "bce"


METHOD = BCE()
