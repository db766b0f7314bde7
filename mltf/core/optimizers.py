"""Optimizers the papers' recipes need that Keras lacks."""

import keras


@keras.saving.register_keras_serializable(package="mltf")
class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient before momentum, as
    ``torch.optim.SGD(weight_decay=...)`` applies it (an L2 term on every
    trained weight): ``g <- g + decay * w``, then Keras's SGD step. Keras's
    own ``weight_decay`` is decoupled (``w <- w - lr * decay * w`` beside the
    momentum step), which at momentum 0.9 shrinks weights about 10 times less
    than the papers' PyTorch recipe. With a constant rate, Keras's momentum
    form (``m <- mu m - lr g``, ``w <- w + m``) equals PyTorch's
    (``b <- mu b + g``, ``w <- w - lr b``).

    Args:
      learning_rate, momentum, nesterov: as in ``keras.optimizers.SGD``.
      coupled_decay: the decay added to the gradient (seed 001: 1e-4).
      **kwargs: ``keras.optimizers.SGD`` arguments; ``weight_decay`` (the
        decoupled form) may not be combined with ``coupled_decay``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False,
                 coupled_decay: float = 0.0, **kwargs):
        if kwargs.get("weight_decay") and coupled_decay:
            raise ValueError("use coupled_decay or weight_decay, not both")
        kwargs.setdefault("name", "coupled_decay_sgd")
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         **kwargs)
        self.coupled_decay = float(coupled_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_decay:
            gradient = gradient + self.coupled_decay * keras.ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "coupled_decay": self.coupled_decay}
