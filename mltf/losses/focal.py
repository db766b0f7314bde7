"""Sigmoid focal loss (Lin et al., ICCV 2017, "Focal Loss for Dense Object
Detection", eq. 5), per label as torchvision's ``sigmoid_focal_loss``:

    FL = alpha_t * (1 - p_t)^gamma * BCE(z, y),

with p = sigmoid(z), p_t = p for a positive and 1 - p for a negative,
alpha_t = alpha for a positive and 1 - alpha for a negative (no alpha_t when
``alpha`` is None), and the BCE computed from the logits (stable).
"""

from typing import Optional

import gin
import keras

from mltf.losses.base import LabelReducedLoss, focusing_weight


@keras.saving.register_keras_serializable(package="mltf")
@gin.configurable(module="mltf.losses")
class FocalLoss(LabelReducedLoss):
    """Focal loss on (multi-hot labels, logits [B, C]) (module docstring);
    ``gamma = 0`` with ``alpha = None`` is BCE.

    Args:
      gamma: the focusing exponent (paper: 2).
      alpha: the weight of the positives, 1 - alpha that of the negatives
        (paper: 0.25, tuned with gamma = 2 for detection); None: unweighted.
      label_reduction: ``"mean"`` or ``"sum"`` over the labels
        (``mltf.losses.base.LabelReducedLoss``).
      **kwargs: ``keras.losses.Loss`` arguments (``name``).
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = 0.25,
                 label_reduction: str = "mean", **kwargs):
        kwargs.setdefault("name", "focal_loss")
        super().__init__(label_reduction=label_reduction, **kwargs)
        if gamma < 0 or (alpha is not None and not 0 <= alpha <= 1):
            raise ValueError(f"need gamma >= 0 and alpha in [0, 1] or None, got "
                             f"gamma={gamma}, alpha={alpha}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)

    def elementwise(self, y, logits):
        # -[y log p + (1 - y) log(1 - p)] = softplus(z) - y z, stable for any z.
        bce = keras.ops.softplus(logits) - y * logits
        # 1 - p as sigmoid(-z): exact where p rounds to 1.
        one_minus_pt = y * keras.ops.sigmoid(-logits) + (1.0 - y) * keras.ops.sigmoid(logits)
        loss = focusing_weight(one_minus_pt, self.gamma) * bce
        if self.alpha is not None:
            loss = (y * self.alpha + (1.0 - y) * (1.0 - self.alpha)) * loss
        return loss

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}
