r"""Chooses RETDM's alpha for the summed BCE (seed 001 eq. 10) on a selection
split carved from MULAN scene's training file; the test file is never read.

  python benchmarks/select_retdm_alpha.py \
      --arff_train=../shared/data/mulan/scene/scene-train.arff --seeds=0,1

The training ARFF is split once, seeded and stratified by label set (sets
seen fewer than twice share one stratum): 80 % ``train``, 20 % ``select``.
Every arm trains ``configs/mulan_scene_mlp_retdm.gin`` on ``train`` and is
scored on ``select`` at threshold 0.5. Arms: RETDM with the summed BCE at
each ``--alphas`` value; the earlier reading (mean BCE, alpha 0.01, where
0.01 was chosen); the BCE controls with either reduction; and, at each
alpha, ``negatives = "batch"`` when ``--batch_negatives`` is set (issue 13
item 12: the memory bank against real in-batch images). Prints mean (std)
over seeds and writes ``<out_dir>/summary.json``. Finished runs are reused.
"""

import collections
import json
import os

from absl import app, flags

from runlib import ROOT, run_seeds, summary_table, train_run

FLAGS = flags.FLAGS
flags.DEFINE_string("arff_train", "../shared/data/mulan/scene/scene-train.arff",
                    "MULAN scene's training ARFF (relative to the project root).")
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds.")
flags.DEFINE_list("alphas", ["0.01", "0.06", "0.3", "1.0"], "alpha values (summed BCE).")
flags.DEFINE_bool("batch_negatives", False, "Also run negatives='batch' at each alpha.")
flags.DEFINE_float("select_fraction", 0.2, "Share of the training file held out.")
flags.DEFINE_integer("split_seed", 0, "Seed of the train/select split.")
flags.DEFINE_string("out_dir", "runs/select_retdm_alpha", "Where records and runs go.")

CONFIG = "configs/mulan_scene_mlp_retdm.gin"
KEYS = ["mAP", "CF1", "OF1", "hamming_loss", "ranking_loss", "one_error", "avg_precision"]


def write_selection_records(data_dir):
    """MULAN scene's training file as ``train`` and ``select`` records."""
    from sklearn.model_selection import train_test_split

    from mltf.data import sources, writer
    from mltf.data.sources import SourceOptions

    if os.path.exists(os.path.join(data_dir, "dataset_info.json")):
        return
    path = os.path.join(ROOT, FLAGS.arff_train)
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: ../shared/data holds MULAN scene (see its README)")
    data = sources.load("arff", SourceOptions(arff_train=path, num_labels=6))
    items = data.splits[sources.ALL]  # a training file alone has no split
    keys = [",".join(map(str, sorted(item.labels))) for item in items]
    counts = collections.Counter(keys)
    strata = [key if counts[key] > 1 else "rare" for key in keys]
    train, select = train_test_split(items, test_size=FLAGS.select_fraction,
                                     random_state=FLAGS.split_seed, stratify=strata)
    data.splits = {"train": train, "select": select}
    writer.write_dataset(data, data_dir, source_name="arff", seed=FLAGS.split_seed,
                         progress=False)


def arms():
    """Arm name to its bindings over ``CONFIG``."""
    out = {"bce_mean": ["mltf.train.method = 'bce'"],
           "bce_sum": ["mltf.train.method = 'bce'", "mltf.train.label_reduction = 'sum'"],
           "retdm_mean_a0.01": ["mltf.build_retdm.alpha = 0.01"]}
    for alpha in FLAGS.alphas:
        base = ["mltf.train.label_reduction = 'sum'", f"mltf.build_retdm.alpha = {alpha}"]
        out[f"retdm_sum_a{alpha}"] = base
        if FLAGS.batch_negatives:
            out[f"retdm_sum_a{alpha}_batch"] = base + ["mltf.build_retdm.negatives = 'batch'"]
    return out


def main(argv):
    del argv
    data_dir = os.path.join(ROOT, FLAGS.out_dir, "data")
    write_selection_records(data_dir)
    table = arms()

    def run_arm(arm, seed):
        bindings = [f"pipelines.InputConfig.data_dir = '{data_dir}'",
                    "eval/pipelines.InputConfig.split = 'select'",
                    f"mltf.train.seed = {seed}", f"pipelines.InputConfig.seed = {seed}",
                    "mltf.train.tune_thresholds = False",
                    *table[arm]]
        return train_run(CONFIG, os.path.join(FLAGS.out_dir, f"{arm}_s{seed}"), bindings,
                         f"{arm} seed {seed}")

    reports = run_seeds(table, FLAGS.seeds, run_arm)
    print(f"\n{CONFIG} on the select split ({FLAGS.select_fraction:.0%} of "
          f"{FLAGS.arff_train}), {len(FLAGS.seeds)} seeds; mean (std)")
    summary, seconds = summary_table(reports, KEYS)
    with open(os.path.join(ROOT, FLAGS.out_dir, "summary.json"), "w") as f:
        json.dump({"config": CONFIG, "seeds": FLAGS.seeds, "arms": table,
                   "select_fraction": FLAGS.select_fraction, "split_seed": FLAGS.split_seed,
                   "table": summary, "train_seconds": seconds,
                   "metrics": {arm: [r["metrics"] for r in reports[arm]] for arm in table}},
                  f, indent=2)


if __name__ == "__main__":
    app.run(main)
