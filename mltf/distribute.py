"""Choosing the tf.distribute strategy.

``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several
workers, MirroredStrategy when several GPUs are visible, the default
(one-device) strategy otherwise. ``cpu:N`` mirrors over N logical CPU devices
(for tests and for checking a multi-replica setup on a laptop); it must be
chosen before TensorFlow has run any op.
"""

import json
import os

import tensorflow as tf

KINDS = ("auto", "default", "mirrored", "multi_worker", "cpu:N")


def _workers():
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    return config.get("cluster", {}).get("worker", [])


def logical_cpus(n: int):
    """Splits the CPU into ``n`` logical devices (before any op runs)."""
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == n:
        return [d.name for d in tf.config.list_logical_devices("CPU")][:n]
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise RuntimeError(
                f"strategy 'cpu:{n}' must be chosen before TensorFlow runs any "
                f"op; this process already has {have} CPU device(s)") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")][:n]


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The strategy for ``kind`` (see the module docstring)."""
    if kind == "auto":
        if len(_workers()) > 1:
            kind = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind.startswith("cpu:"):
        try:
            n = int(kind[4:])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"strategy {kind!r}: expected cpu:N with N >= 1")
        return tf.distribute.MirroredStrategy(logical_cpus(n))
    raise ValueError(f"unknown strategy {kind!r}; choose one of {', '.join(KINDS)}")


def check_batch(global_batch: int, strategy: tf.distribute.Strategy):
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(
            f"the global batch size {global_batch} must divide by the {replicas} "
            f"replicas in sync; use a multiple of {replicas}")
