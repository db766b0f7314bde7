"""Binary cross-entropy summed over the labels, as seed 000's equation (1)
and seed 001's equation (10) write it (Keras's BCE averages over them)."""

import gin
import keras


@keras.saving.register_keras_serializable(package="mltf")
@gin.configurable(module="mltf.losses")
class LabelSummedBCE(keras.losses.BinaryCrossentropy):
    """BCE from logits, summed over the C labels of an example (C times
    Keras's label mean), then averaged over the batch like every Keras loss
    (per-replica scaling included). With it, a weight such as seed 000's
    alpha = 10 in ``L_G + alpha * L_logistic`` has the equations' meaning.

    Args:
      label_smoothing: as in ``keras.losses.BinaryCrossentropy``.
      **kwargs: ``keras.losses.BinaryCrossentropy`` arguments
        (``from_logits`` is fixed to True).
    """

    def __init__(self, label_smoothing: float = 0.0, **kwargs):
        kwargs.pop("from_logits", None)
        kwargs.setdefault("name", "bce_sum")
        super().__init__(from_logits=True, label_smoothing=label_smoothing, **kwargs)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.shape(y_pred)[-1], y_pred.dtype)
        return super().call(y_true, y_pred) * labels
