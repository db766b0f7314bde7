r"""BCE against BCE + WGAN-gp from the same BCE checkpoint, same budget.

  python benchmarks/compare_wgan.py --config=configs/demo_wgangp.gin \
      --initial_model=runs/demo/model.keras --seeds=0,1,2 --epochs=5

Both arms start from ``--initial_model`` (a BCE-trained classifier) and run
the same number of generator updates with the same generator batch, Adam
learning rate and input pipeline; the only difference is the loss: plain BCE,
or seed 000's -D + alpha BCE with the critic trained alongside (3 critic
updates per generator update on fresh batches). Each arm runs once per seed
(``mltf.train.seed``, the input pipeline's seed and ``mltf.build_wgan.seed``).
Prints the metrics of ``KEYS`` as mean and standard deviation over seeds
and writes them, per run, to ``<out_dir>/summary.json``.
``--arms=wgan_gp`` runs the WGAN-gp arm alone, e.g. to compare two of its
settings through ``--gin_bindings`` in two out_dirs.
Every run is trained afresh (the runs of ``runlib`` with ``reuse=False``):
an arm's budget depends on ``--epochs`` and the checkpoint, which a run
folder left from another comparison may not match.
"""

import json
import os

from absl import app, flags

from runlib import ROOT, run_seeds, summary_table, train_run

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/demo_wgangp.gin", "A *_wgangp.gin config.")
flags.DEFINE_string("initial_model", "runs/demo/model.keras",
                    "The BCE checkpoint both arms start from.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("epochs", 5, "Epochs of each arm.")
flags.DEFINE_string("out_dir", "runs/compare_wgan", "Where the runs go.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for both arms.")
flags.DEFINE_list("arms", ["wgan_gp", "bce"],
                  "The arms to run (bce takes its step count from the wgan_gp arm's run).")

KEYS = ["mAP", "CF1", "OF1", "CF1_top3", "OF1_top3", "CP", "CR", "OP", "OR",
        "hamming_loss", "ranking_loss", "one_error", "coverage", "avg_precision"]
# The WGAN-gp arm runs first in each seed: BCE takes its step count.
ARMS = ("wgan_gp", "bce")


def _run_dir(method, seed):
    return os.path.join(FLAGS.out_dir, f"{method}_s{seed}")


def run_arm(method, seed):
    bindings = [f"mltf.train.initial_model = '{FLAGS.initial_model}'",
                f"mltf.train.epochs = {FLAGS.epochs}",
                f"mltf.train.seed = {seed}",
                f"pipelines.InputConfig.seed = {seed}",
                f"mltf.build_wgan.seed = {seed}",
                "mltf.train.tune_thresholds = False", *FLAGS.gin_bindings]
    if method == "bce":
        # Same generator updates: one WGAN step = one generator batch.
        with open(os.path.join(ROOT, _run_dir("wgan_gp", seed), "metrics.json")) as f:
            steps = json.load(f)["steps_per_epoch"]
        bindings += ["mltf.train.method = 'bce'",
                     "mltf.train.optimizer = @generator/keras.optimizers.Adam()",
                     f"mltf.train.steps_per_epoch = {steps}"]
    return train_run(FLAGS.config, _run_dir(method, seed), bindings, f"{method} seed {seed}",
                     reuse=False)


def main(argv):
    del argv
    arms = [arm for arm in ARMS if arm in FLAGS.arms]
    reports = run_seeds(arms, FLAGS.seeds, run_arm)
    print(f"\n{len(FLAGS.seeds)} seeds, {FLAGS.epochs} epochs from {FLAGS.initial_model}; "
          "mean (std); percent except the last five")
    table, seconds = summary_table({arm: reports[arm] for arm in reversed(arms)}, KEYS)
    with open(os.path.join(ROOT, FLAGS.out_dir, "summary.json"), "w") as f:
        json.dump({"config": FLAGS.config, "initial_model": FLAGS.initial_model,
                   "seeds": FLAGS.seeds, "epochs": FLAGS.epochs,
                   "results": {arm: [r["metrics"] for r in reports[arm]] for arm in arms},
                   "table": table, "train_seconds": seconds}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
