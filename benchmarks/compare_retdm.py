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

from absl import app, flags

from runlib import ROOT, run_seeds, summary_table, train_run

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/mulan_scene_mlp_retdm.gin", "A *_retdm.gin config.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_string("out_dir", "runs/compare_retdm", "Where the runs go.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for every arm.")

ARMS = {"bce": ["mltf.train.method = 'bce'"],
        "retdm": [],
        "one_way": ["mltf.build_retdm.two_way = False"]}


def run_arm(arm, seed):
    bindings = [f"mltf.train.seed = {seed}", f"pipelines.InputConfig.seed = {seed}",
                *ARMS[arm], *FLAGS.gin_bindings]
    return train_run(FLAGS.config, os.path.join(FLAGS.out_dir, f"{arm}_s{seed}"),
                     bindings, f"{arm} seed {seed}")


def main(argv):
    del argv
    reports = run_seeds(ARMS, FLAGS.seeds, run_arm)
    print(f"\n{FLAGS.config}, {len(FLAGS.seeds)} seeds, split "
          f"{reports['bce'][0]['split']!r}; mean (std); percent for P/R/F1 and mAP")
    table, seconds = summary_table(reports)
    with open(os.path.join(ROOT, FLAGS.out_dir, "summary.json"), "w") as f:
        json.dump({"config": FLAGS.config, "seeds": FLAGS.seeds,
                   "bindings": FLAGS.gin_bindings, "table": table,
                   "train_seconds": seconds,
                   "metrics": {arm: [r["metrics"] for r in reports[arm]] for arm in ARMS}},
                  f, indent=2)


if __name__ == "__main__":
    app.run(main)
