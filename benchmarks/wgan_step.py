r"""Time of one WGAN-gp generator update (3 critic updates + 1 generator
update) divided by the time of one BCE step: same backbone, generator batch
and machine, measured in alternating rounds in one run (seed 000's loop,
mltf.wgan).

  python benchmarks/wgan_step.py
  python benchmarks/wgan_step.py --backbone=vgg16 --image_size=224 --batch_size=32

Seed 000's step draws 10 fresh batches of --batch_size (3 critic updates x
matched / generated / mismatched + the generator's), so it runs fext on 10
batches and G forward on 3 more besides the generator's own update;
``batches="shared"`` uses one batch for all of it. Both are measured. Target
in the issue: at most 2.5.
"""

import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import steplib  # noqa: E402

FLAGS = flags.FLAGS
steplib.define_flags(backbone="small_cnn", batch_size=32, num_labels=20, steps=15, rounds=3,
                     batch_help="Generator batch b.")
flags.adopt_module_key_flags(steplib)


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf
    from mltf.methods import wgan_gp as wgan

    xla = steplib.resolve_xla(FLAGS.xla)
    rng = np.random.default_rng(0)
    b, s, c = FLAGS.batch_size, FLAGS.image_size, FLAGS.num_labels

    def generator():
        return steplib.classifier(FLAGS.backbone, s, c)

    bce = generator()
    bce.compile(optimizer=keras.optimizers.Adam(1e-4), xla=xla)
    gans = {}
    for batches in ("fresh", "shared"):
        g = generator()
        gan = wgan.WGANGPClassifier(g, wgan.LabelCritic(c), wgan.frozen_copy(g.backbone),
                                    batches=batches)
        gan.build((None, s, s, 3))
        gan.compile(critic_optimizer=keras.optimizers.Adam(1e-4),
                    generator_optimizer=keras.optimizers.Adam(1e-4), xla=xla)
        gans[batches] = gan

    def data(n):
        x = rng.uniform(0, 1, (n, s, s, 3)).astype("float32")
        y = (rng.random((n, c)) < 0.2).astype("float32")
        return x, y

    runs = {"bce": (bce, tf.data.Dataset.from_tensors(data(b)).repeat())}
    for batches, gan in gans.items():
        xk, yk = data(b * gan.slots)
        runs[f"wgan_{batches}"] = (gan, tf.data.Dataset.from_tensors(
            ({"images": xk, "mismatched_labels": yk[::-1]}, yk)).repeat())
    for model, ds in runs.values():
        model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    times = steplib.time_rounds(runs, FLAGS.rounds, FLAGS.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{steplib.machine()}; backbone {FLAGS.backbone}, "
          f"{s} px, generator batch {b}, {c} labels, XLA {xla}, "
          f"{FLAGS.steps} steps x {FLAGS.rounds} rounds (medians)")
    print(f"BCE step:                                         {1000 * med['bce']:8.1f} ms")
    print(f"WGAN-gp step, fresh batches (seed 000, 10 batches): {1000 * med['wgan_fresh']:8.1f} ms"
          f"  ratio {med['wgan_fresh'] / med['bce']:.2f}")
    print(f"WGAN-gp step, one shared batch:                   {1000 * med['wgan_shared']:8.1f} ms"
          f"  ratio {med['wgan_shared'] / med['bce']:.2f}")
    print("(ratio = WGAN-gp step (3 critic + 1 generator update) / BCE step; target <= 2.5)")

if __name__ == "__main__":
    app.run(main)
