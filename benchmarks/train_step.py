r"""BCE training-step throughput: XLA on vs off, one vs two replicas.

  python benchmarks/train_step.py
  python benchmarks/train_step.py --backbone=vgg16 --image_size=224 --batch_size=32

Trains ``mltf.models.MultiLabelClassifier`` on a fixed in-memory batch (so
the input pipeline is not measured) with each of: XLA off / on, and the
default strategy (1 replica) / a MirroredStrategy over 2 devices (2 logical
CPU devices on a CPU machine, 2 GPUs where there are). The four are measured
in alternating rounds in one process and printed side by side, with the
ratios XLA/no-XLA and 2/1 replicas. On a CPU machine the two "replicas" share
the same cores: the 2-replica figure shows the cost of the distribution
machinery, not a speed-up.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "small_cnn", "Backbone name (mltf.backbones).")
flags.DEFINE_integer("image_size", 64, "Image side.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_integer("num_labels", 20, "Labels.")
flags.DEFINE_integer("steps", 30, "Timed steps per round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds.")
flags.DEFINE_string("mixed_precision", None, "e.g. mixed_float16 (GPU) or mixed_bfloat16.")


def main(argv):
    del argv
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= 2:
        two = tf.distribute.MirroredStrategy([g.name.replace("physical_device:", "")
                                              for g in gpus[:2]])
        kind = "2 GPUs"
    else:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
        two = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")][:2])
        kind = "2 logical CPU devices"
    import keras
    import numpy as np
    from mltf import backbones, models

    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    rng = np.random.default_rng(0)
    n = FLAGS.batch_size
    x = rng.uniform(-1, 1, (n, FLAGS.image_size, FLAGS.image_size, 3)).astype("float32")
    y = (rng.random((n, FLAGS.num_labels)) < 0.2).astype("float32")
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()

    def build(strategy, xla):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            backbone = backbones.build_backbone(
                FLAGS.backbone, (FLAGS.image_size, FLAGS.image_size, 3))
            model = models.MultiLabelClassifier(backbone, FLAGS.num_labels)
            model.build((None, FLAGS.image_size, FLAGS.image_size, 3))
            model.compile(optimizer=keras.optimizers.Adam(1e-4), xla=xla)
        model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace + compile
        return model

    setups = {}
    for replicas, strategy in ((1, tf.distribute.get_strategy()), (2, two)):
        for xla in (False, True):
            setups[(replicas, xla)] = build(strategy, xla)
    print(f"tensorflow {tf.__version__}, {os.cpu_count()} cores, GPUs: {len(gpus)}; "
          f"backbone {FLAGS.backbone}, {FLAGS.image_size} px, global batch {n}, "
          f"{FLAGS.steps} steps x {FLAGS.rounds} rounds; 2 replicas = {kind}")
    rates = {k: [] for k in setups}
    for r in range(FLAGS.rounds):
        order = list(setups) if r % 2 == 0 else list(reversed(list(setups)))
        for key in order:
            start = time.perf_counter()
            setups[key].fit(ds, epochs=1, steps_per_epoch=FLAGS.steps, verbose=0)
            rates[key].append(FLAGS.steps * n / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{'replicas':>9} {'XLA off':>12} {'XLA on':>12} {'on/off':>8}")
    for replicas in (1, 2):
        off, on = med[(replicas, False)], med[(replicas, True)]
        print(f"{replicas:>9} {off:>9.1f}/s {on:>9.1f}/s {on / off:>8.2f}")
    print(f"2 / 1 replicas: XLA off {med[(2, False)] / med[(1, False)]:.2f}, "
          f"XLA on {med[(2, True)] / med[(1, True)]:.2f}  (examples/s, median of rounds)")


if __name__ == "__main__":
    app.run(main)
