"""What mltf's element-wise multi-label losses share: a loss per (example,
label) from logits, reduced over the labels by ``label_reduction`` and then
over the batch as every Keras loss is (``sum_over_batch_size``, so per-replica
scaling under a ``tf.distribute`` strategy is Keras's own)."""

import keras

LABEL_REDUCTIONS = ("mean", "sum")


def focusing_weight(base, gamma: float):
    """``base ** gamma`` for ``base`` in [0, 1], with a finite gradient where
    ``base`` is 0: TF's ``pow`` gradient there is 0 * inf = NaN for
    ``gamma`` <= 1, and ASL's probability shift makes ``base`` exactly 0 for
    every easy negative. Where ``base`` is 0 the loss term it weights is 0
    too, so a zero gradient there is the exact one."""
    if gamma == 0:
        return keras.ops.ones_like(base)
    positive = base > 0
    safe = keras.ops.where(positive, base, keras.ops.ones_like(base))
    return keras.ops.where(positive, keras.ops.power(safe, gamma), keras.ops.zeros_like(base))


class LabelReducedLoss(keras.losses.Loss):
    """Base of the losses computed per label from logits: subclasses define
    ``elementwise(y, logits)``, the [B, C] loss terms.

    Args:
      label_reduction: ``"mean"`` over the C labels of an example (Keras's
        BCE) or ``"sum"`` (C times the mean: the papers' equations,
        ``LabelSummedBCE``). It must match the classifier's
        ``label_reduction``, which the method weights are chosen for.
      **kwargs: ``keras.losses.Loss`` arguments (``name``, ``reduction``).
    """

    def __init__(self, label_reduction: str = "mean", **kwargs):
        if label_reduction not in LABEL_REDUCTIONS:
            raise ValueError(f"label_reduction must be 'mean' or 'sum', got {label_reduction!r}")
        super().__init__(**kwargs)
        self.label_reduction = label_reduction

    def elementwise(self, y, logits):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y = keras.ops.cast(y_true, y_pred.dtype)
        terms = self.elementwise(y, y_pred)
        if self.label_reduction == "sum":
            return keras.ops.sum(terms, axis=-1)
        return keras.ops.mean(terms, axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_reduction": self.label_reduction}
