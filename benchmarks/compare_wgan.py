r"""BCE against BCE + WGAN-gp from the same BCE checkpoint, same budget.

  python benchmarks/compare_wgan.py --config=configs/demo_wgangp.gin \
      --initial_model=runs/demo/model.keras --seeds=0,1,2 --epochs=5

Both arms start from ``--initial_model`` (a BCE-trained classifier) and run
the same number of generator updates with the same generator batch, Adam
learning rate and input pipeline; the only difference is the loss: plain BCE,
or seed 000's -D + alpha BCE with the critic trained alongside (3 critic
updates per generator update on fresh batches). Each arm runs once per seed
(``mltf.train.seed``, the input pipeline's seed and ``mltf.build_wgan.seed``).
Prints every metric of ``mltf.metrics`` as mean and standard deviation over
seeds, and the starting checkpoint's own metrics, and writes a JSON file.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/demo_wgangp.gin", "A *_wgangp.gin config.")
flags.DEFINE_string("initial_model", "runs/demo/model.keras", "The BCE checkpoint both arms start from.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("epochs", 5, "Epochs of each arm.")
flags.DEFINE_string("out_dir", "runs/compare_wgan", "Where the runs go.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for both arms.")

KEYS = ["mAP", "CF1", "OF1", "CF1_top3", "OF1_top3", "CP", "CR", "OP", "OR",
        "hamming_loss", "ranking_loss", "one_error", "coverage", "avg_precision"]


def run_arm(method, seed, model_dir, steps=None):
    bindings = [f"mltf.train.initial_model = '{FLAGS.initial_model}'",
                f"mltf.train.epochs = {FLAGS.epochs}",
                f"mltf.train.seed = {seed}",
                f"pipelines.InputConfig.seed = {seed}",
                f"mltf.build_wgan.seed = {seed}",
                "mltf.train.tune_thresholds = False", *FLAGS.gin_bindings]
    if method == "bce":
        # Same generator updates: one WGAN step = one generator batch.
        bindings += ["mltf.train.method = 'bce'",
                     "mltf.train.optimizer = @generator/keras.optimizers.Adam()"]
    cmd = [sys.executable, "-m", "mltf.train", f"--config={FLAGS.config}",
           f"--model_dir={model_dir}", "--overwrite",
           *[f"--gin_bindings={b}" for b in bindings]]
    if steps is not None:
        cmd.append(f"--gin_bindings=mltf.train.steps_per_epoch = {steps}")
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:
        sys.exit(f"{method} seed {seed} failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(ROOT, model_dir, "metrics.json")) as f:
        report = json.load(f)
    return report, time.time() - start


def main(argv):
    del argv
    results = {"bce": [], "wgan_gp": []}
    times = {"bce": [], "wgan_gp": []}
    for seed in FLAGS.seeds:
        steps = None
        for method in ("wgan_gp", "bce"):  # BCE takes the WGAN arm's step count
            report, seconds = run_arm(method, seed,
                                      os.path.join(FLAGS.out_dir, f"{method}_s{seed}"), steps)
            steps = report["steps_per_epoch"]
            metrics = report["metrics"]
            results[method].append(metrics)
            times[method].append(seconds)
            print(f"{method:8} seed {seed}: mAP {100 * metrics['mAP']:.2f} "
                  f"C-F1 {100 * metrics['CF1']:.2f} O-F1 {100 * metrics['OF1']:.2f} "
                  f"({seconds:.0f} s)", flush=True)
    print(f"\n{len(FLAGS.seeds)} seeds, {FLAGS.epochs} epochs from {FLAGS.initial_model}; "
          "mean (std); percent except the last five")
    print(f"{'metric':<15}{'BCE':>18}{'BCE + WGAN-gp':>18}")
    table = {}
    for key in KEYS:
        scale = 1 if key in ("hamming_loss", "ranking_loss", "one_error", "coverage",
                             "avg_precision") else 100
        row = []
        for method in ("bce", "wgan_gp"):
            values = [scale * r[key] for r in results[method]]
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            row.append((mean, std))
        table[key] = row
        print(f"{key:<15}" + "".join(f"{m:>11.3f} ({s:.3f})" for m, s in row))
    print(f"{'seconds':<15}" + "".join(f"{statistics.mean(times[m]):>18.0f}"
                                       for m in ("bce", "wgan_gp")))
    with open(os.path.join(ROOT, FLAGS.out_dir, "summary.json"), "w") as f:
        json.dump({"config": FLAGS.config, "initial_model": FLAGS.initial_model,
                   "seeds": FLAGS.seeds, "epochs": FLAGS.epochs, "results": results,
                   "seconds": times}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
