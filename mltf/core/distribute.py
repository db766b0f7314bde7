"""Choosing the tf.distribute strategy.

``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several
workers, MirroredStrategy when several GPUs are visible, the default
(one-device) strategy otherwise. ``cpu:N`` mirrors over N logical CPU devices
(for tests and for checking a multi-replica setup on a laptop); it must be
chosen before TensorFlow has run any op.
"""

import json
import os

import numpy as np
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


_MADE = {}


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The strategy for ``kind`` (see the module docstring); one instance per
    kind and process, so the CLI can make it at start-up (multi-worker and
    ``cpu:N`` strategies must exist before TensorFlow runs any op, and gin
    builds the configured optimizers before ``train`` starts) and ``train``
    gets the same one."""
    if kind not in _MADE:
        _MADE[kind] = _make(kind)
    return _MADE[kind]


def _make(kind: str) -> tf.distribute.Strategy:
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


# --- several workers -------------------------------------------------------------


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: always, except on the
    non-chief workers of a multi-worker run (the chief is task ``chief`` or,
    without one, ``worker`` 0)."""
    if not is_multi_worker(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def task_name(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "local"
    return f"{resolver.task_type}{resolver.task_id}"


def _broadcast(strategy, tensors):
    """Every tensor as the chief's replica 0 holds it, on every worker (a sum
    all-reduce where the other replicas contribute zeros). Integer tensors
    travel as float64 (exact below 2**53)."""
    if not tensors:
        return []
    dtypes = [t.dtype for t in tensors]
    sendable = [t if t.dtype.is_floating else tf.cast(t, tf.float64) for t in tensors]

    def replica_fn(*values):
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        values = [tf.where(first, v, tf.zeros_like(v)) for v in values]
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)

    results = strategy.run(replica_fn, args=tuple(sendable))
    if not isinstance(results, (list, tuple)):
        results = [results]
    out = []
    for value, dtype in zip(results, dtypes):
        local = strategy.experimental_local_results(value)[0]
        out.append(local if local.dtype == dtype else tf.cast(tf.round(local), dtype))
    return out


def broadcast_bytes(strategy: tf.distribute.Strategy, data: bytes) -> bytes:
    """The chief's ``data`` on every worker (what the others pass is
    ignored; every worker must call this, in the same order)."""
    (length,) = _broadcast(strategy, [tf.constant([len(data)], tf.float64)])
    length = int(length.numpy()[0])
    buf = np.zeros(max(length, 1), np.float32)
    if data:
        array = np.frombuffer(data, np.uint8)
        buf[:min(len(array), length)] = array[:length]
    (values,) = _broadcast(strategy, [tf.constant(buf)])
    return bytes(values.numpy()[:length].astype(np.uint8))


def broadcast_variables(strategy: tf.distribute.Strategy, variables) -> None:
    """Sets every worker's copy of ``variables`` (Keras or tf variables) to
    the chief's values, e.g. after only the chief loaded a checkpoint."""
    if not is_multi_worker(strategy):
        return
    variables = list(variables)
    values = _broadcast(strategy, [tf.convert_to_tensor(getattr(v, "value", v))
                                   for v in variables])
    for var, value in zip(variables, values):
        var.assign(value)


def broadcast_flag(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """The chief's ``flag`` on every worker."""
    if not is_multi_worker(strategy):
        return bool(flag)
    (value,) = _broadcast(strategy, [tf.constant(1.0 if flag else 0.0)])
    return bool(value.numpy() > 0.5)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    if not is_multi_worker(strategy):
        return 1
    return int(strategy.extended._num_workers)  # noqa: SLF001 (no public accessor)


def tf_config_is_chief() -> bool:
    """Whether ``TF_CONFIG`` makes this process the chief (or names no
    cluster), read before any strategy exists."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError:
        return True  # make_strategy reports the bad JSON
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) <= 1:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    if "chief" in cluster:
        return kind == "chief"
    return kind == "worker" and index == 0


def loopback_cluster(num_workers: int):
    """``TF_CONFIG`` values for ``num_workers`` workers on this machine, on
    free ports of 127.0.0.1 (tests and benchmarks; a port may be taken again
    before the worker binds it, so callers retry on a clash)."""
    import socket
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(num_workers)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        hosts = [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]
    finally:
        for s in socks:
            s.close()
    return [json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})
            for i in range(num_workers)]
