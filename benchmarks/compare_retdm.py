r"""BCE against RETDM and one-way RETDM: same network, optimiser, epochs, data.

  python benchmarks/compare_retdm.py --config=configs/mulan_scene_mlp_retdm.gin \
      --seeds=0,1,2 --out_dir=runs/compare_retdm/mulan_scene
  python benchmarks/compare_retdm.py --config=configs/miml_scene_small_cnn_retdm.gin \
      --seeds=0,1,2 --out_dir=runs/compare_retdm/miml_scene

The three arms run one ``--config`` (a ``*_retdm.gin``) and differ only in
the loss: ``bce`` binds ``mltf.train.method = "bce"`` (the same classifier,
Phi_cnn included, trained with BCE for every epoch), ``retdm`` is the config
as it is (three stages, two-way metric), ``one_way`` binds
``mltf.build_retdm.two_way = False`` (seed 001 Table V). Each arm runs once per
seed (``mltf.train.seed`` and the input pipeline's seed); the data split is
the dataset's own. Metrics are at threshold 0.5 on the config's evaluation
split. Prints all eleven criteria of the paper's tables, plus mAP, as mean
(std) over seeds, and writes ``summary.json``. Runs whose ``metrics.json``
exists are reused, so an interrupted comparison picks up where it stopped.
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
flags.DEFINE_string("config", "configs/mulan_scene_mlp_retdm.gin", "A *_retdm.gin config.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_string("out_dir", "runs/compare_retdm", "Where the runs go.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for every arm.")

ARMS = {"bce": ["mltf.train.method = 'bce'"],
        "retdm": [],
        "one_way": ["mltf.build_retdm.two_way = False"]}
# The paper's eleven criteria, then mAP. Percent for the first six and mAP.
KEYS = ["CP", "CR", "CF1", "OP", "OR", "OF1", "hamming_loss", "ranking_loss",
        "coverage", "one_error", "avg_precision", "mAP"]
PERCENT = {"CP", "CR", "CF1", "OP", "OR", "OF1", "mAP"}


def run_arm(arm, seed):
    model_dir = os.path.join(FLAGS.out_dir, f"{arm}_s{seed}")
    report_path = os.path.join(ROOT, model_dir, "metrics.json")
    if not os.path.exists(report_path):
        bindings = [f"mltf.train.seed = {seed}", f"pipelines.InputConfig.seed = {seed}",
                    "mltf.train.verbose = 0", *ARMS[arm], *FLAGS.gin_bindings]
        cmd = [sys.executable, "-m", "mltf.train", f"--config={FLAGS.config}",
               f"--model_dir={model_dir}", "--overwrite",
               *[f"--gin_bindings={b}" for b in bindings]]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if proc.returncode:
            sys.exit(f"{arm} seed {seed} failed:\n{proc.stderr[-3000:]}")
    with open(report_path) as f:
        return json.load(f)


def main(argv):
    del argv
    reports = {arm: [] for arm in ARMS}
    for seed in FLAGS.seeds:
        for arm in ARMS:
            start = time.time()
            report = run_arm(arm, seed)
            reports[arm].append(report)
            m = report["metrics"]
            print(f"{arm:8} seed {seed}: mAP {100 * m['mAP']:.2f} C-F1 {100 * m['CF1']:.2f} "
                  f"O-F1 {100 * m['OF1']:.2f} (train {report['train_seconds']:.0f} s, "
                  f"wall {time.time() - start:.0f} s)", flush=True)
    print(f"\n{FLAGS.config}, {len(FLAGS.seeds)} seeds, split "
          f"{reports['bce'][0]['split']!r}; mean (std); percent for P/R/F1 and mAP")
    print(f"{'criterion':<15}" + "".join(f"{arm:>18}" for arm in ARMS))
    table = {}
    for key in KEYS:
        scale = 100 if key in PERCENT else 1
        row = []
        for arm in ARMS:
            values = [scale * r["metrics"][key] for r in reports[arm]]
            row.append((statistics.mean(values),
                        statistics.stdev(values) if len(values) > 1 else 0.0))
        table[key] = row
        print(f"{key:<15}" + "".join(f"{m:>11.3f} ({s:.3f})" for m, s in row))
    seconds = {arm: statistics.mean(r["train_seconds"] for r in reports[arm]) for arm in ARMS}
    print(f"{'train seconds':<15}" + "".join(f"{seconds[arm]:>18.0f}" for arm in ARMS))
    with open(os.path.join(ROOT, FLAGS.out_dir, "summary.json"), "w") as f:
        json.dump({"config": FLAGS.config, "seeds": FLAGS.seeds,
                   "bindings": FLAGS.gin_bindings, "table": table,
                   "train_seconds": seconds,
                   "metrics": {arm: [r["metrics"] for r in reports[arm]] for arm in ARMS}},
                  f, indent=2)


if __name__ == "__main__":
    app.run(main)
