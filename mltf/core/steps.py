"""Training-step machinery shared by mltf's models: XLA that survives
``tf.distribute``, loss scaling per replica, synced non-trainable state.

Why not ``model.compile(jit_compile=True)``: Keras 3.15 wraps the *whole*
step, ``strategy.run`` included, in one XLA function. Under a
MirroredStrategy that fails ("Trying to access resource .../replica_1 located
in device CPU:1 from device CPU:0"), and ``jit_compile="auto"`` silently
turns XLA off under any strategy. mltf instead compiles the *per-replica*
computation: a pure function from variable values and a batch to the loss,
the gradients and the new non-trainable values (``Layer.stateless_call``),
called inside the replica context. Gradient all-reduce, the optimizer update
and the non-trainable assignments stay outside XLA, where tf.distribute
handles them. Models compile with Keras's ``jit_compile=False`` and their own
``xla`` switch.

Loss scaling: under a MirroredStrategy gradients are *summed* over replicas,
so a per-replica loss must be the per-replica mean divided by the number of
replicas. Keras ``Loss`` objects do this (``sum_over_batch_size``
reduction); ``per_replica_mean`` does it for hand-written terms, and
``unscaled`` undoes it for the loss trackers.
"""

from typing import Sequence

import tensorflow as tf

from mltf.core import distribute


def num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def per_replica_mean(values):
    """Mean of ``values`` over this replica's batch, scaled for summing over
    replicas (equal to the global-batch mean once summed)."""
    return tf.reduce_mean(values) / tf.cast(num_replicas(), values.dtype)


def unscaled(loss):
    """A replica-scaled loss back to the per-example mean (for trackers)."""
    return loss * tf.cast(num_replicas(), loss.dtype)


def resolve_xla(xla) -> bool:
    """``"auto"``: XLA on GPUs, off on CPUs, where it measured slower for
    conv nets (benchmarks/train_step.py: 0.59x for the small CNN on 2 cores,
    2026-11-22); a bool is taken as it is."""
    if xla == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    if not isinstance(xla, bool):
        raise ValueError(f"xla must be True, False or 'auto', got {xla!r}")
    return xla


def replica_function(fn, xla: bool):
    """``fn`` as a ``tf.function``, XLA-compiled when ``xla``; call it in the
    replica context (inside ``train_step``)."""
    return tf.function(fn, jit_compile=bool(xla), reduce_retracing=True)


def assign_synced(variables: Sequence, values: Sequence) -> None:
    """Assigns new values of non-trainable variables (e.g. BatchNorm moving
    statistics) from a replica context: averaged over replicas first, so
    every replica keeps the same state (the single-device result when the
    statistics are means over equal per-replica batches)."""
    variables = list(variables)
    if not variables:
        return
    ctx = tf.distribute.get_replica_context()
    values = list(values)
    # Float state (moving statistics) is averaged; integer state (random
    # seed counters) advances identically on every replica and is kept.
    floats = [i for i, v in enumerate(values) if v.dtype.is_floating]
    if floats and ctx is not None and ctx.num_replicas_in_sync > 1:
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [values[i] for i in floats])
        for i, r in zip(floats, reduced):
            values[i] = r

    assign_replicated(variables, values)


def _assign(var, value):
    return var.assign(value)


def assign_replicated(variables: Sequence, values: Sequence, update=None) -> None:
    """Applies ``update(variable, value)`` from a replica context where every
    replica holds the *same* ``values`` (e.g. computed from all-gathered
    data): no reduction, each device's copy updated with its local value.
    ``update`` (default: assign) gets the backend ``tf.Variable`` and may
    scatter (``var.scatter_update(tf.IndexedSlices(...))``)."""
    variables, values = list(variables), list(values)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        for v, value in zip(variables, values):
            if update is None:
                v.assign(value)
            else:
                update(v.value, value)
        return
    update = update or _assign

    def merged(strategy, vals):
        for v, value in zip(variables, vals):
            strategy.extended.update(v.value, update, args=(value,))

    ctx.merge_call(merged, args=(values,))


def variable_values(variables):
    return [v.value for v in variables]


def step_logs(values: dict) -> dict:
    """A ``train_step``/``test_step`` result for Keras's ``fit``.

    Under MultiWorkerMirroredStrategy, Keras 3.15 reduces every step output
    with ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars
    ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388); a shape-[1] value reduces to the scalar
    mean over replicas, as MirroredStrategy's per-replica mean does.
    """
    if not distribute.is_multi_worker(tf.distribute.get_strategy()):
        return values
    return {k: tf.reshape(v, [1]) for k, v in values.items()}


class PrebuiltFit:
    """For models that are built (and their optimizers too) before ``fit``:
    skips Keras's symbolic build of the first batch, a no-op for a built
    model that still reduces the batch over replicas and so fails under
    MultiWorkerMirroredStrategy (a ``PerReplica`` batch cannot be reduced
    there). Mixed in before ``keras.Model``."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built and all(layer.built for layer in self._flatten_layers()):
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
