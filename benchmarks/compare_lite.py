r"""EfficientNet-Lite0 (ImageNet) on the MIML scene photos: BCE, BCE + WGAN-gp
and RETDM, on cached features and fine-tuned, with the full metric table.

  python tools/make_tfrecords.py --source=csv \
      --csv=../shared/data/miml-scene/labels.csv --output_dir=data/miml_scene_full
  python tools/cache_features.py --data_dir=data/miml_scene_full \
      --output_dir=data/miml_scene_lite0 --backbone=efficientnet_lite0 --image_size=224
  python benchmarks/compare_lite.py --arms=feat_bce,feat_wgangp,feat_retdm --seeds=0,1,2
  python benchmarks/compare_lite.py --arms=ft_bce,ft_wgangp,ft_retdm --seeds=0

Each arm is one config of ``configs/miml_scene_lite0*.gin`` as written; the
WGAN-gp arms start from the same seed's BCE arm (run first if needed). Each
arm runs once per seed (``mltf.train.seed``, the input pipeline's seed and
``mltf.build_wgan.seed``); the split is the dataset's own seeded 80/20 one.
Metrics are at threshold 0.5 on ``val``. Prints every criterion as mean (std)
over seeds and the mean training time, and writes
``summary_<arms>.json``. Runs
whose ``metrics.json`` exists are reused.
"""

import json
import os

from absl import app, flags

from runlib import ROOT, run_seeds, summary_table, train_run

FLAGS = flags.FLAGS
flags.DEFINE_list("arms", ["feat_bce", "feat_wgangp", "feat_retdm"], "Arms to run.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_string("out_dir", "runs/compare_lite", "Where the runs go.")

# arm -> (config, the arm whose model.keras it starts from)
ARMS = {"feat_bce": ("configs/miml_scene_lite0_features.gin", None),
        "feat_wgangp": ("configs/miml_scene_lite0_features_wgangp.gin", "feat_bce"),
        "feat_retdm": ("configs/miml_scene_lite0_features_retdm.gin", None),
        "ft_bce": ("configs/miml_scene_lite0.gin", None),
        "ft_wgangp": ("configs/miml_scene_lite0_wgangp.gin", "ft_bce"),
        "ft_retdm": ("configs/miml_scene_lite0_retdm.gin", None)}


def run_arm(arm, seed):
    config, start_from = ARMS[arm]
    bindings = [f"mltf.train.seed = {seed}", f"pipelines.InputConfig.seed = {seed}"]
    if start_from:
        run_arm(start_from, seed)
        model = os.path.join(FLAGS.out_dir, f"{start_from}_s{seed}", "model.keras")
        bindings += [f"mltf.train.initial_model = '{model}'",
                     f"mltf.build_wgan.seed = {seed}"]
    return train_run(config, os.path.join(FLAGS.out_dir, f"{arm}_s{seed}"),
                     bindings, f"{arm} seed {seed}")


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.arms) - set(ARMS))
    if unknown:
        raise app.UsageError(f"unknown arms {unknown}; choose from {sorted(ARMS)}")
    reports = run_seeds(FLAGS.arms, FLAGS.seeds, run_arm)
    print(f"\nMIML scene, EfficientNet-Lite0, {len(FLAGS.seeds)} seeds, split "
          f"{reports[FLAGS.arms[0]][0]['split']!r}; mean (std); percent for P/R/F1 and mAP")
    table, seconds = summary_table(reports)
    name = f"summary_{'+'.join(FLAGS.arms)}.json"  # one per set of arms
    with open(os.path.join(ROOT, FLAGS.out_dir, name), "w") as f:
        json.dump({"arms": {arm: ARMS[arm][0] for arm in FLAGS.arms}, "seeds": FLAGS.seeds,
                   "table": table, "train_seconds": seconds,
                   "metrics": {arm: [r["metrics"] for r in reports[arm]] for arm in FLAGS.arms}},
                  f, indent=2)


if __name__ == "__main__":
    app.run(main)
