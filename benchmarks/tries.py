r"""The table of tries (issue 16 item 4): settings the methods may need, each
scored on the SELECTION split (the held-out part of the training file that
every run carves, ``mltf.training.selection``); the test file is read by
each run at its end but never enters this table.

  python tools/make_tfrecords.py --source=arff \
      --arff_train=../shared/data/mulan/emotions/emotions-train.arff \
      --arff_test=../shared/data/mulan/emotions/emotions-test.arff \
      --num_labels=6 --output_dir=/tmp/mulan_emotions
  python tools/make_tfrecords.py --source=arff \
      --arff_train=../shared/data/mulan/scene/scene-train.arff \
      --arff_test=../shared/data/mulan/scene/scene-test.arff \
      --num_labels=6 --output_dir=/tmp/mulan_scene
  python benchmarks/tries.py --emotions_dir=/tmp/mulan_emotions \
      --scene_dir=/tmp/mulan_scene --seeds=0 --out_dir=runs/tries \
      --best=wgan_gp:bce_control,wgan_gp:critic_betas,wgan_gp:no_warmup,\
retdm:bce_control,retdm:batch_negatives --best_seeds=1,2

WGAN-gp tries run configs/mulan_emotions_mlp_wgangp.gin from one BCE run of
configs/mulan_emotions_mlp.gin per seed (``<out_dir>/emotions/base_s<seed>``),
beside the equal-budget BCE control from the same checkpoint (2,000 Adam
updates, the generator's optimizer); RETDM tries run
configs/mulan_scene_mlp_retdm.gin beside its BCE control. ``--only`` runs a
subset (``wgan_gp``, ``retdm:sum_a0.3``: method and try as in the table);
``--best=METHOD:NAME`` adds seeds for chosen tries (``--best_seeds``).
Finished runs are reused. Writes ``<out_dir>/tries.md`` and ``tries.json``.
The command above builds the README's table: every try at seed 0, the
tries chosen on seed 0 and their controls also at seeds 1 and 2.
"""

import json
import os
import time

from absl import app, flags

import trieslib
from runlib import ROOT, train_run

FLAGS = flags.FLAGS
flags.DEFINE_string("emotions_dir", "/tmp/mulan_emotions", "MULAN emotions TFRecords.")
flags.DEFINE_string("scene_dir", "/tmp/mulan_scene", "MULAN scene TFRecords.")
flags.DEFINE_list("seeds", ["0"], "Seeds of every try.")
flags.DEFINE_list("only", [], "Run only these tries, METHOD:NAME or METHOD (default: all).")
flags.DEFINE_list("best", [], "Tries (METHOD:NAME) that also run --best_seeds.")
flags.DEFINE_list("best_seeds", ["1"], "The extra seeds of --best.")
flags.DEFINE_string("out_dir", "runs/tries", "Where the runs and the table go.")

WGAN_BASE = "configs/mulan_emotions_mlp.gin"
WGAN_CONFIG = "configs/mulan_emotions_mlp_wgangp.gin"
RETDM_CONFIG = "configs/mulan_scene_mlp_retdm.gin"
SUM = "mltf.train.label_reduction = 'sum'"
NORM = "mltf.build_retdm.normalize_embeddings = True"
# (method, name, bindings over the method's config). The WGAN-gp config
# already has seed 000's inverse temperature 0.9, a 600-update critic warm-up
# and 2,000 generator updates, Adam (0.9, 0.999) for both players.
TRIES = (
    ("wgan_gp", "bce_control", ["mltf.train.method = 'bce'",
                                "mltf.train.optimizer = @generator/keras.optimizers.Adam()",
                                "mltf.train.epochs = 20"]),
    ("wgan_gp", "wgan_gp", []),
    ("wgan_gp", "inv_temp_3", ["mltf.build_wgan.inverse_temperature = 3.0"]),
    ("wgan_gp", "inv_temp_5", ["mltf.build_wgan.inverse_temperature = 5.0"]),
    ("wgan_gp", "straight_through", ["mltf.build_wgan.straight_through = True"]),
    ("wgan_gp", "critic_betas", ["critic/keras.optimizers.Adam.beta_1 = 0.5",
                                 "critic/keras.optimizers.Adam.beta_2 = 0.9"]),
    # The same 2,000 generator updates without the warm-up.
    ("wgan_gp", "no_warmup", ["mltf.build_wgan.critic_warmup = 0", "mltf.train.epochs = 20"]),
    ("retdm", "bce_control", ["mltf.train.method = 'bce'"]),
    ("retdm", "retdm", []),
    ("retdm", "sum_a0.01", [SUM, "mltf.build_retdm.alpha = 0.01"]),
    ("retdm", "sum_a0.06", [SUM, "mltf.build_retdm.alpha = 0.06"]),
    ("retdm", "sum_a0.3", [SUM, "mltf.build_retdm.alpha = 0.3"]),
    ("retdm", "sum_a1", [SUM, "mltf.build_retdm.alpha = 1.0"]),
    ("retdm", "batch_negatives", ["mltf.build_retdm.negatives = 'batch'"]),
    ("retdm", "normalized", [NORM]),
    # Unit vectors bound the distances (d <= 2): the metric pulls less at one alpha.
    ("retdm", "normalized_sum_a0.3", [NORM, SUM, "mltf.build_retdm.alpha = 0.3"]),
    ("retdm", "normalized_sum_a1", [NORM, SUM, "mltf.build_retdm.alpha = 1.0"]),
)


def seed_bindings(seed, data_dir):
    return [f"pipelines.InputConfig.data_dir = '{data_dir}'", f"mltf.train.seed = {seed}",
            f"pipelines.InputConfig.seed = {seed}", f"mltf.build_wgan.seed = {seed}"]


def run_try(group, name, bindings, seed):
    """The run folder of one try and seed, trained (and timed) unless done."""
    if group == "wgan_gp":
        common = seed_bindings(seed, FLAGS.emotions_dir)
        base = os.path.join(FLAGS.out_dir, "emotions", f"base_s{seed}")
        train_run(WGAN_BASE, base, common, f"emotions base seed {seed}")
        common.append(f"mltf.train.initial_model = '{os.path.join(ROOT, base, 'model.keras')}'")
        config, folder = WGAN_CONFIG, "emotions"
    else:
        common, config, folder = seed_bindings(seed, FLAGS.scene_dir), RETDM_CONFIG, "scene"
    run_dir = os.path.join(FLAGS.out_dir, folder, f"{name}_s{seed}")
    done = os.path.exists(os.path.join(ROOT, run_dir, "metrics.json"))
    start = time.time()
    report = train_run(config, run_dir, common + bindings, f"{group} {name} seed {seed}")
    if not done:
        with open(os.path.join(ROOT, run_dir, trieslib.WALL_FILE), "w") as f:
            json.dump({"wall_seconds": round(time.time() - start, 1)}, f)
    chosen = report["selection"]["metrics"]
    print(f"{group:8} {name:20} seed {seed}: selection mAP {100 * chosen['mAP']:.2f} "
          f"example-F1 {100 * chosen['example_F1']:.2f} "
          f"subset acc. {100 * chosen['subset_accuracy']:.2f}", flush=True)
    return os.path.join(ROOT, run_dir)


def main(argv):
    del argv
    names = {f"{group}:{name}" for group, name, _ in TRIES}
    unknown = (set(FLAGS.only) - names - {group for group, _, _ in TRIES}) | (
        set(FLAGS.best) - names)
    if unknown:
        raise app.UsageError(f"no try named {', '.join(sorted(unknown))}")
    rows = []
    for group, name, bindings in TRIES:
        if FLAGS.only and not {group, f"{group}:{name}"} & set(FLAGS.only):
            continue
        seeds = FLAGS.seeds + (FLAGS.best_seeds if f"{group}:{name}" in FLAGS.best else [])
        dirs = [run_try(group, name, bindings, seed) for seed in seeds]
        rows.append(trieslib.try_row(group, name, bindings, dirs))
    table = trieslib.markdown(rows)
    print("\nSelection-split figures (threshold 0.5), mean over the seeds:\n" + table)
    out = os.path.join(ROOT, FLAGS.out_dir)
    with open(os.path.join(out, "tries.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out, "tries.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    app.run(main)
