"""Asymmetric loss (Ben-Baruch et al., ICCV 2021, "Asymmetric Loss For
Multi-Label Classification"), as the authors' code (Alibaba-MIIL/ASL,
``losses.py``, class ``AsymmetricLoss``) computes it.

With p = sigmoid(z) and the shifted probability p_m = max(p - m, 0) (m:
``clip``), each label contributes

    L+ = (1 - p)^gamma_pos * log(max(p, eps))            for a positive,
    L- = p_m^gamma_neg * log(max(1 - p_m, eps))           for a negative,

and the loss is -(sum of the terms). A negative with p <= m contributes 0
(and no gradient): the shift discards easy negatives. The official code
returns the sum over all B * C elements; mltf reduces over the labels by
``label_reduction`` and averages over the batch, so its ``"sum"`` is the
official value divided by the batch size (its ``"mean"``: divided by B * C),
a constant factor that the learning rate absorbs.
"""

import gin
import keras

from mltf.losses.base import LabelReducedLoss, focusing_weight


@keras.saving.register_keras_serializable(package="mltf")
@gin.configurable(module="mltf.losses")
class AsymmetricLoss(LabelReducedLoss):
    """ASL on (multi-hot labels, logits [B, C]) (module docstring). For 0/1
    labels the terms equal the official code's; with
    ``gamma_neg = gamma_pos = 0`` and ``clip = 0`` it is BCE (up to ``eps``).

    Args:
      gamma_neg: focusing exponent of the negatives (paper: 4).
      gamma_pos: focusing exponent of the positives (the official class's
        default 1; the authors' ``train.py`` uses 0).
      clip: the probability margin m of the negatives (paper: 0.05; 0: no
        shift).
      eps: the floor of the probabilities inside the logarithms (1e-8).
      disable_focal_grad: compute the focusing weights without gradient, so
        they only scale the BCE gradients (the official
        ``disable_torch_grad_focal_loss``, which its ``train.py`` turns on;
        in the current ``losses.py`` only ``AsymmetricLossOptimized`` obeys
        it, ``AsymmetricLoss`` has the switch commented out and keeps the
        gradient, as mltf's default does).
      label_reduction: ``"mean"`` or ``"sum"`` over the labels
        (``mltf.losses.base.LabelReducedLoss``).
      **kwargs: ``keras.losses.Loss`` arguments (``name``).
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05,
                 eps: float = 1e-8, disable_focal_grad: bool = False,
                 label_reduction: str = "mean", **kwargs):
        kwargs.setdefault("name", "asymmetric_loss")
        super().__init__(label_reduction=label_reduction, **kwargs)
        if clip < 0 or gamma_neg < 0 or gamma_pos < 0:
            raise ValueError("gamma_neg, gamma_pos and clip must be >= 0")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.eps = float(eps)
        self.disable_focal_grad = bool(disable_focal_grad)

    def elementwise(self, y, logits):
        p = keras.ops.sigmoid(logits)
        # sigmoid(-z), not 1 - p: exact where p rounds to 1.
        not_p = keras.ops.sigmoid(-logits)
        p_shifted = keras.ops.maximum(p - self.clip, 0.0) if self.clip else p
        not_p_shifted = keras.ops.minimum(not_p + self.clip, 1.0) if self.clip else not_p
        w_pos = focusing_weight(not_p, self.gamma_pos)
        w_neg = focusing_weight(p_shifted, self.gamma_neg)
        if self.disable_focal_grad:
            w_pos, w_neg = keras.ops.stop_gradient(w_pos), keras.ops.stop_gradient(w_neg)
        pos = y * w_pos * keras.ops.log(keras.ops.maximum(p, self.eps))
        neg = (1.0 - y) * w_neg * keras.ops.log(keras.ops.maximum(not_p_shifted, self.eps))
        return -(pos + neg)

    def get_config(self):
        return {**super().get_config(), "gamma_neg": self.gamma_neg,
                "gamma_pos": self.gamma_pos, "clip": self.clip, "eps": self.eps,
                "disable_focal_grad": self.disable_focal_grad}
