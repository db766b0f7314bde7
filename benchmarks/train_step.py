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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import steplib  # noqa: E402

FLAGS = flags.FLAGS
steplib.define_flags(backbone="small_cnn", batch_size=64, num_labels=20, steps=30, rounds=3,
                     batch_help="Global batch size.", xla=False)
flags.adopt_module_key_flags(steplib)
flags.DEFINE_string("mixed_precision", None, "e.g. mixed_float16 (GPU) or mixed_bfloat16.")


def main(argv):
    del argv
    import tensorflow as tf
    from mltf.core import distribute
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= 2:
        two = tf.distribute.MirroredStrategy([g.name.replace("physical_device:", "")
                                              for g in gpus[:2]])
        kind = "2 GPUs"
    else:
        two = distribute.make_strategy("cpu:2")
        kind = "2 logical CPU devices"
    import keras
    import numpy as np

    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    rng = np.random.default_rng(0)
    n = FLAGS.batch_size
    x = rng.uniform(-1, 1, (n, FLAGS.image_size, FLAGS.image_size, 3)).astype("float32")
    y = (rng.random((n, FLAGS.num_labels)) < 0.2).astype("float32")
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()

    def build(strategy, xla):
        with strategy.scope():
            model = steplib.classifier(FLAGS.backbone, FLAGS.image_size, FLAGS.num_labels)
            model.compile(optimizer=keras.optimizers.Adam(1e-4), xla=xla)
        model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace + compile
        return model

    setups = {}
    for replicas, strategy in ((1, tf.distribute.get_strategy()), (2, two)):
        for xla in (False, True):
            setups[(replicas, xla)] = build(strategy, xla)
    print(f"{steplib.machine()}; "
          f"backbone {FLAGS.backbone}, {FLAGS.image_size} px, global batch {n}, "
          f"{FLAGS.steps} steps x {FLAGS.rounds} rounds; 2 replicas = {kind}")
    times = steplib.time_rounds({k: (m, ds) for k, m in setups.items()},
                                FLAGS.rounds, FLAGS.steps)
    med = {k: statistics.median(n / t for t in v) for k, v in times.items()}
    print(f"{'replicas':>9} {'XLA off':>12} {'XLA on':>12} {'on/off':>8}")
    for replicas in (1, 2):
        off, on = med[(replicas, False)], med[(replicas, True)]
        print(f"{replicas:>9} {off:>9.1f}/s {on:>9.1f}/s {on / off:>8.2f}")
    print(f"2 / 1 replicas: XLA off {med[(2, False)] / med[(1, False)]:.2f}, "
          f"XLA on {med[(2, True)] / med[(1, True)]:.2f}  (examples/s, median of rounds)")


if __name__ == "__main__":
    app.run(main)
