"""One process of tests/training/test_multi_worker.py: trains tiny mltf models with
``model.fit`` under a tf.distribute strategy and writes their weights.

    python tests/training/multi_worker_step.py METHODS MODE STEPS OUT_PREFIX [--xla]

METHODS: comma-separated ``bce``, ``wgan_gp``, ``retdm`` (trained one after
the other in this process, under one strategy). MODE: ``multi_worker``
(MultiWorkerMirroredStrategy, one CPU device per process; ``TF_CONFIG`` set
by the caller) or ``mirrored`` (one process, MirroredStrategy over 2 logical
CPU devices). Writes ``OUT_PREFIX.<method>.npz`` with every model variable,
every optimizer variable and the optimizers' iteration counts, and prints
one ``TIMING`` line per method (mean wall time of the steps after the first).
``--xla`` compiles the per-replica steps with XLA (``mltf.core.steps``).

Both modes see the same global batches: global batch s is the concatenation
of two per-replica halves, and replica r always trains on half r (with
MirroredStrategy's one input pipeline the stream interleaves the halves,
which ``distribute_datasets_from_function`` deals to replica 0, 1, 0, ...;
under MWMS input pipeline w, on worker w, yields half w only).

The models are the tiny ones of tests/models/test_models.py, tests/methods/test_wgan.py
and tests/methods/test_retdm.py (rebuilt here: those modules import conftest, which
splits this process's CPU into logical devices before MWMS can start).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPLICAS = 2
XLA = False  # --xla
METHODS = ("bce", "wgan_gp", "retdm")


def make_strategy(mode):
    if mode == "multi_worker":
        workers = json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]
        assert len(workers) == REPLICAS, workers
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored":
        from mltf.core import distribute
        return tf.distribute.MirroredStrategy(distribute.logical_cpus(REPLICAS))
    raise ValueError(f"unknown mode {mode!r}")


# --- the models and their data (per-replica batches) --------------------------

def build_bce():
    """test_models' classifier, with the small CNN (BatchNorm: its moving
    statistics are synced over replicas, the part MWMS could get wrong)."""
    import keras
    from mltf import backbones, models
    model = models.MultiLabelClassifier(
        backbones.build_backbone("small_cnn", (8, 8, 3), widths=(4,)), 3,
        label_names=["a", "b", "c"])
    model.build((None, 8, 8, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.1), xla=XLA)
    return model


def data_bce(steps, half):
    """Per-replica batches of 4 (global 8): (x, y)."""
    rng = np.random.default_rng(0)
    n = steps * REPLICAS * half
    x = rng.random((n, 8, 8, 3)).astype("float32")
    y = (rng.random((n, 3)) < 0.4).astype("float32")
    return (x, y)


def build_wgan():
    """test_wgan's make_wgan, through the gin factories."""
    import keras
    from mltf import models, wgan
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh", name="dense")(inputs)
    generator = models.MultiLabelClassifier(keras.Model(inputs, h, name="bb"), 4)
    generator.build((None, 6))
    critic = wgan.build_critic(4, projection_dim=8, hidden_dim=16, depth=2)
    model = wgan.build_wgan(generator, critic, wgan.frozen_copy(generator.backbone),
                            n_critic=3)
    model.build((None, 6))
    model.compile(critic_optimizer=keras.optimizers.Adam(1e-3),
                  generator_optimizer=keras.optimizers.Adam(1e-3), xla=XLA)
    return model


def data_wgan(steps, half):
    """test_wgan's toy_batch: per-replica batches of slots (10) chunks of 2."""
    rng = np.random.default_rng(7)
    n = steps * REPLICAS * half
    y = (rng.random((n, 4)) < 0.4).astype("float32")
    x = np.concatenate([y * 2 - 1, rng.normal(size=(n, 2))], axis=1).astype("float32")
    x[:, :4] += 0.1 * rng.normal(size=(n, 4))
    return ({"images": x, "mismatched_labels": np.roll(y, 1, axis=0)}, y)


def _retdm_arrays(steps, half):
    rng = np.random.default_rng(0)
    n = steps * REPLICAS * half
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :4] + 0.5 * rng.normal(size=(n, 4)) > 0.3).astype("float32")
    return x, y


def build_retdm(steps, half):
    """test_retdm's _tiny (MLP backbone, bank negatives, stage 3)."""
    import keras
    from mltf import backbones, models, retdm
    clf = models.MultiLabelClassifier(
        backbones.build_backbone("mlp", (6,), hidden_sizes=(8,), dropout=0.0,
                                 embedding_dim=5), 4)
    model = retdm.build_retdm(clf, _retdm_arrays(steps, half)[1], k=3, label_units=6)
    model.build((None, 6))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), xla=XLA)
    model.set_stage(3)
    return model


def data_retdm(steps, half):
    """Per-replica batches of 8 (global 16); step 2 on reads the bank."""
    return _retdm_arrays(steps, half)


SPECS = {  # method: (builder(steps, half), data(steps, half), per-replica batch)
    "bce": (lambda steps, half: build_bce(), data_bce, 4),
    "wgan_gp": (lambda steps, half: build_wgan(), data_wgan, 20),
    "retdm": (build_retdm, data_retdm, 8),
}


def distributed_data(strategy, arrays, steps, half):
    """Global batch s = examples [s * 2 half, (s + 1) * 2 half); replica r
    trains on its half r."""

    def dataset_fn(ctx):
        if ctx.num_input_pipelines == 1:  # one stream dealt to the replicas in turn
            halves = list(range(REPLICAS))
        else:  # one pipeline per worker, one replica per worker
            assert ctx.num_input_pipelines == REPLICAS, ctx
            halves = [ctx.input_pipeline_id]
        order = [(s * REPLICAS + h) * half for s in range(steps) for h in halves]
        index = np.concatenate([np.arange(i, i + half) for i in order])
        picked = tf.nest.map_structure(lambda a: a[index], arrays)
        return tf.data.Dataset.from_tensor_slices(picked).batch(half, drop_remainder=True)

    return strategy.distribute_datasets_from_function(dataset_fn)


def parts_of(model):
    """A part name for each of ``model.weights`` (for the test's checks of
    what moved)."""
    if hasattr(model, "critic"):
        groups = {"fext": model.feature_extractor, "critic": model.critic,
                  "generator": model.generator}
    elif hasattr(model, "bank"):
        groups = {"bank": model.bank, "classifier": model.classifier,
                  "label_hidden": model.label_hidden,
                  "label_embedding": model.label_embedding,
                  "reconstruction": model.reconstruction}
    else:
        groups = {"backbone": model.backbone, "head": model.head}
    owner = {}
    for name, layer in groups.items():
        for v in layer.weights:
            owner.setdefault(id(v), name)
    return np.array([owner.get(id(v), "other") for v in model.weights])


def optimizers_of(model):
    if hasattr(model, "critic_optimizer"):
        return {"generator": model.generator_optimizer, "critic": model.critic_optimizer}
    return {"optimizer": model.optimizer}


class StepTimes:
    def __init__(self):
        import keras

        times = self.times = []

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter() - self.start)

        self.callback = Callback()


def run(method, strategy, steps, out_prefix, task, evaluate=True):
    import keras
    build, data, half = SPECS[method]
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build(steps, half)
    initial = [v.numpy().copy() for v in model.weights]
    timer = StepTimes()
    history = model.fit(distributed_data(strategy, data(steps, half), steps, half),
                        epochs=1, steps_per_epoch=steps, verbose=0,
                        callbacks=[timer.callback])
    out = {"names": np.array([v.path for v in model.weights]), "parts": parts_of(model)}
    # The logs too: step outputs reduced over replicas (steps.step_logs).
    for key, values in history.history.items():
        out[f"fit_{key}"] = np.array(values[-1], np.float64)
    if evaluate:
        logs = model.evaluate(distributed_data(strategy, data(steps, half), steps, half),
                              steps=steps, verbose=0, return_dict=True)
        for key, value in logs.items():
            out[f"eval_{key}"] = np.array(value, np.float64)
    for i, v in enumerate(model.weights):
        out[f"w{i}"] = v.numpy()
        out[f"init{i}"] = initial[i]
    for key, opt in optimizers_of(model).items():
        out[f"iterations_{key}"] = np.array(int(opt.iterations.numpy()))
        for i, v in enumerate(opt.variables):
            out[f"opt_{key}_{i}"] = v.numpy()
    np.savez(f"{out_prefix}.{method}.npz", **out)
    later = timer.times[1:] or timer.times
    print(f"TIMING method={method} task={task} steps={steps} "
          f"first_step_s={timer.times[0]:.3f} mean_step_s={np.mean(later):.5f} "
          f"steps_per_s={1.0 / np.mean(later):.2f}", flush=True)


def main(argv):
    global XLA
    XLA = "--xla" in argv[5:]
    methods, mode, steps, out_prefix = argv[1].split(","), argv[2], int(argv[3]), argv[4]
    for method in methods:
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}; choose from {METHODS}")
    strategy = make_strategy(mode)
    assert strategy.num_replicas_in_sync == REPLICAS, strategy.num_replicas_in_sync
    task = (json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            if mode == "multi_worker" else 0)
    for method in methods:
        run(method, strategy, steps, out_prefix, task)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv)
