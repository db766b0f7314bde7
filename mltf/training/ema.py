"""The exponential moving average of the weights (Keras optimizers'
``use_ema``: ``average <- m * average + (1 - m) * weight`` after every
update, the first update copying the weight) where a run looks at its model.

Keras keeps the averages as optimizer variables (so ``save_weights``, hence a
run's committed state, holds them and a resumed run continues them) and puts
them into the model only when ``fit`` ends (``finalize_variable_values``).
The per-epoch evaluation and ``last.keras`` / ``best.keras`` run inside
``averaged_weights``, which puts them in for the block and the raw weights
back after it: training and the run's backup continue from the raw ones.
Only trainable variables are averaged (BatchNorm statistics stay raw, as in
Keras).
"""

import contextlib

import keras


def uses_ema(optimizer) -> bool:
    """Whether ``optimizer`` (or the one a ``LossScaleOptimizer`` wraps)
    averages the weights."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return bool(getattr(inner, "use_ema", False))


def with_ema(optimizer, momentum: float):
    """A copy of ``optimizer`` with ``use_ema`` on at ``momentum``."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1), got {momentum}")
    config = keras.optimizers.serialize(optimizer)
    config["config"].update(use_ema=True, ema_momentum=float(momentum))
    return keras.optimizers.deserialize(config)


@contextlib.contextmanager
def averaged_weights(model):
    """Inside the block ``model``'s trainable variables hold its optimizer's
    averages (nothing changes when it keeps none)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not uses_ema(optimizer):
        yield
        return
    variables = model.trainable_variables
    raw = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, raw):
            variable.assign(value)
