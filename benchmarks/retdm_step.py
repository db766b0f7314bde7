r"""Run: python benchmarks/retdm_step.py  (about 2 minutes on 2 CPU cores)

Expect a BCE and a RETDM line in ms per step, then "ratio RETDM / BCE" (the
issue's target: at most 1.3), the time the kNN table took and the memory
bank's size. It measures the time of one RETDM training step (stage 3, the
joint stage, the most expensive one) divided by the time of one BCE step:
same backbone, batch, input and machine, in alternating rounds in one run
(seed 001, mltf.retdm).

  python benchmarks/retdm_step.py --backbone=small_cnn
  python benchmarks/retdm_step.py --backbone=vgg16 --image_size=224 --num_train=82783

Prints the median ms per step of each arm (over --rounds alternating rounds
of --steps steps, after a warm-up; --steps=0 picks enough steps for about
--round_seconds per round: 3 for VGG-16 on a CPU, many more for the small
CNN) with the spread of the rounds; the ratio RETDM/BCE of the medians and
of the fastest rounds (the steadier figure when other processes share the
cores); the time ``mltf.build_retdm`` took (the kNN table); the number of
distinct label sets; and the memory bank's size (sets x dim x 4 bytes), in
this run and at MS-COCO scale (20,000 sets).

Both arms run a ``MultiLabelClassifier`` on ``build_backbone(--backbone,
embedding_dim=512)`` (RETDM's Phi_cnn) with SGD(0.01, momentum 0.9) on one
fixed in-memory batch (the input pipeline is not measured). The RETDM arm
wraps a second, identically built classifier with ``build_retdm(classifier,
labels, k=10)``, where ``labels`` is a synthetic COCO-like training label
matrix (--num_train images, --num_labels labels, about 2.9 labels per image
drawn with skewed label frequencies, seeded), so there are many distinct
sets; the batch's labels are rows of that matrix, so every example's set is
found in the table. The RETDM step adds the set lookup (a [B, D] matmul
against all D distinct sets), the kNN and memory-bank gathers, the label net
on y and on the B x k neighbour sets, both metric losses, the reconstruction
and the bank's scatter update.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import steplib  # noqa: E402

FLAGS = flags.FLAGS
steplib.define_flags(backbone="vgg16", batch_size=32, num_labels=80, steps=0, rounds=5,
                     labels_help="Labels C (80: MS-COCO).",
                     steps_help="Timed steps per round; 0: enough BCE steps for about "
                                "--round_seconds (at least 3).")
flags.adopt_module_key_flags(steplib)
flags.DEFINE_integer("num_train", 20000, "Training label sets N behind the kNN table.")
flags.DEFINE_integer("embedding_dim", 512, "Phi_cnn's embedding size (the bank's row size).")
flags.DEFINE_integer("k", 10, "Neighbour label sets per set.")
flags.DEFINE_float("round_seconds", 6.0, "Target length of one arm's round when --steps=0.")

COCO_SETS = 20000  # distinct label sets at MS-COCO scale (mltf.retdm docstring)


def coco_like_labels(n, c, seed=0, mean_labels=2.9):
    """[n, c] multi-hot float32: 1 + Poisson(mean_labels - 1) labels per
    image, drawn without replacement with Zipf-like label frequencies."""
    import numpy as np
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, c + 1) ** 0.7
    p = rng.permutation(p / p.sum())
    sizes = np.clip(1 + rng.poisson(mean_labels - 1, n), 1, c)
    y = np.zeros((n, c), np.float32)
    for i, size in enumerate(sizes):
        y[i, rng.choice(c, size, replace=False, p=p)] = 1.0
    return y


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf
    from mltf.methods import retdm

    xla = steplib.resolve_xla(FLAGS.xla)
    rng = np.random.default_rng(0)
    b, s, c = FLAGS.batch_size, FLAGS.image_size, FLAGS.num_labels

    def classifier():
        return steplib.classifier(FLAGS.backbone, s, c, embedding_dim=FLAGS.embedding_dim)

    def sgd():
        return keras.optimizers.SGD(0.01, momentum=0.9)

    labels = coco_like_labels(FLAGS.num_train, c)
    bce = classifier()
    bce.compile(optimizer=sgd(), xla=xla)
    start = time.perf_counter()
    model = retdm.build_retdm(classifier(), labels, k=FLAGS.k)
    table_s = time.perf_counter() - start
    model.build((None, s, s, 3))
    model.compile(optimizer=sgd(), xla=xla)
    model.set_stage(3)

    x = rng.uniform(0, 1, (b, s, s, 3)).astype("float32")
    y = labels[rng.choice(len(labels), b, replace=False)]
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    _, found = model.set_ids(tf.constant(y))
    assert bool(tf.reduce_all(found)), "batch label sets missing from the table"
    runs = {"bce": bce, "retdm": model}
    for m in runs.values():
        m.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace + warm up
    n_steps = FLAGS.steps
    if n_steps <= 0:
        start = time.perf_counter()
        bce.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
        n_steps = max(3, round(FLAGS.round_seconds * 3 / (time.perf_counter() - start)))
    times = steplib.time_rounds({k: (m, ds) for k, m in runs.items()}, FLAGS.rounds, n_steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    num_sets, dim = (int(d) for d in model.bank.bank.shape)
    print(f"{steplib.machine()}; backbone {FLAGS.backbone}, "
          f"{s} px, batch {b}, {c} labels, embedding {dim}, k {model.k}, XLA {xla}, "
          f"{n_steps} steps x {FLAGS.rounds} rounds (medians)")
    print(f"label sets: {len(labels):,} training images, {labels.sum(1).mean():.2f} labels "
          f"per image, {num_sets:,} distinct sets; build_retdm (kNN table) took {table_s:.1f} s")
    spread = {k: f"(rounds {1000 * min(v):.1f} to {1000 * max(v):.1f})" for k, v in times.items()}
    print(f"BCE step:                  {1000 * med['bce']:8.1f} ms {spread['bce']}")
    print(f"RETDM step (stage 3):      {1000 * med['retdm']:8.1f} ms {spread['retdm']}")
    print(f"ratio RETDM / BCE:         {med['retdm'] / med['bce']:8.2f}  (target <= 1.3; "
          f"fastest rounds: {min(times['retdm']) / min(times['bce']):.2f})")
    print(f"memory bank: {num_sets:,} sets x {dim} x 4 B = {num_sets * dim * 4 / 1e6:.1f} MB; "
          f"at MS-COCO scale ({COCO_SETS:,} sets x {dim}): {COCO_SETS * dim * 4 / 1e6:.1f} MB")


if __name__ == "__main__":
    app.run(main)
