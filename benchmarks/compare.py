r"""Arms x seeds, each arm against a control: every metric as mean (std) over
seeds and the paired difference to the control with a 95 % confidence
interval (bootstrap over images, pooled over seeds).

  # RETDM against BCE on MULAN scene (the README's RETDM table):
  python benchmarks/compare.py --config=configs/mulan_scene_mlp_retdm.gin \
      --arm="bce=mltf.train.method = 'bce'" --arm=retdm \
      --arm="one_way=mltf.build_retdm.two_way = False" \
      --seeds=0,1,2 --out_dir=runs/compare/mulan_scene_retdm

  # WGAN-gp against its equal-budget BCE control, both from one BCE run:
  python benchmarks/compare.py --base=configs/demo.gin \
      --config=configs/demo_wgangp.gin --arm=wgan_gp \
      --arm="bce=mltf.train.method = 'bce';\
mltf.train.optimizer = @generator/keras.optimizers.Adam()" \
      --control=bce --budget_from=wgan_gp --out_dir=runs/compare/demo_wgan

An arm is ``NAME``, ``NAME=BINDING;BINDING`` (gin bindings over
``--config``) or ``NAME@CONFIG=...`` (its own config). The first arm is the
control unless ``--control`` names another. Every run binds
``mltf.train.seed`` and the pipeline's seed to the seed and keeps
``mltf.train``'s default protocol: the plateau schedule, the thresholds
and, with ``mltf.train.final = "best"``, the epoch (default: the last) are
chosen on the selection split carved from the training split, and the
reported split is the config's evaluation split, read once at the end
(``mltf.training.selection``).

``--base``: a config trained first for each seed (``<out_dir>/base_s<seed>``);
every arm then starts from its ``model.keras`` (``mltf.train.initial_model``),
so a label-dependency arm and its control continue the same model.
``--budget_from=ARM``: every other arm trains for ARM's steps per epoch (one
WGAN-gp step is one generator update on one generator batch), so the arms
make the same number of updates.

The intervals: for each of ``--bootstrap`` resamples of the reported split's
images (the same images for every arm and seed), the metric of each seed's
run is computed on the resample, arm minus control, averaged over seeds; the
2.5 and 97.5 percentiles of those differences are the interval. It covers
the sampling of test images given these seeds' runs, not the training
noise of new seeds (the std column shows that). Finished runs are reused.
Writes ``<out_dir>/summary.json`` and ``summary.md``.
"""

import json
import os
import statistics

import numpy as np
from absl import app, flags

from runlib import PERCENT, ROOT, run_seeds, train_run

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "The config every arm runs unless it names its own.")
flags.DEFINE_multi_string("arm", [], "NAME, NAME=BINDING;BINDING or NAME@CONFIG=BINDING;...")
flags.DEFINE_string("control", None, "The arm the others are compared with (default: the first).")
flags.DEFINE_string("base", None, "A config trained first per seed; every arm starts from it.")
flags.DEFINE_string("budget_from", None, "Every other arm trains ARM's steps per epoch.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_multi_string("gin_bindings", [], "Bindings for every run (base included).")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples for the intervals.")
flags.DEFINE_string("out_dir", "runs/compare", "Where the runs and the summary go.")

# The table's rows, in order; the paired intervals are given for CI_KEYS.
KEYS = ["mAP", "CF1", "OF1", "example_F1", "subset_accuracy", "jaccard", "CP", "CR", "OP", "OR",
        "hamming_loss", "ranking_loss", "one_error", "coverage", "avg_precision",
        "labels_per_image_pred", "labels_per_image_true"]
CI_KEYS = ["mAP", "CF1", "OF1", "example_F1", "subset_accuracy"]
SET_PERCENT = {"example_F1", "subset_accuracy", "jaccard"}


def parse_arm(spec, default_config):
    """``(name, config, bindings)`` of an ``--arm`` value."""
    head, _, bindings = spec.partition("=")
    name, _, config = head.partition("@")
    config = config or default_config
    if not name or not config:
        raise app.UsageError(f"--arm={spec!r}: give a name and --config (or NAME@CONFIG)")
    return name.strip(), config, [b.strip() for b in bindings.split(";") if b.strip()]


def seed_bindings(seed):
    return [f"mltf.train.seed = {seed}", f"pipelines.InputConfig.seed = {seed}",
            f"mltf.build_wgan.seed = {seed}"]


def run_all(arms, seeds):
    """``{arm: [metrics.json report per seed]}``, training what is missing
    (``runlib.run_seeds``: per seed, the budget arm first)."""
    configs = {name: (config, bindings) for name, config, bindings in arms}
    order = sorted(configs, key=lambda name: name != FLAGS.budget_from)
    budgets = {}

    def run_arm(name, seed):
        common = seed_bindings(seed) + list(FLAGS.gin_bindings)
        if FLAGS.base:
            base_dir = os.path.join(FLAGS.out_dir, f"base_s{seed}")
            train_run(FLAGS.base, base_dir, common, f"base seed {seed}")
            common.append(f"mltf.train.initial_model = "
                          f"'{os.path.join(ROOT, base_dir, 'model.keras')}'")
        config, bindings = configs[name]
        extra = ([f"mltf.train.steps_per_epoch = {budgets[seed]}"]
                 if seed in budgets and name != FLAGS.budget_from else [])
        report = train_run(config, os.path.join(FLAGS.out_dir, f"{name}_s{seed}"),
                           common + bindings + extra, f"{name} seed {seed}")
        if name == FLAGS.budget_from:
            budgets[seed] = report["steps_per_epoch"]
        return report

    return run_seeds(order, seeds, run_arm)


def load_predictions(name, seeds):
    """Per seed ``(ids, labels, scores)`` of the reported split, sorted by id."""
    out = []
    for seed in seeds:
        with np.load(os.path.join(ROOT, FLAGS.out_dir, f"{name}_s{seed}",
                                  "predictions.npz")) as f:
            order = np.argsort(f["ids"])
            out.append((f["ids"][order], f["labels"][order], f["scores"][order]))
    return out


def ci_metrics(y, s):
    """The ``CI_KEYS`` metrics at threshold 0.5 (fractions)."""
    from mltf import metrics
    prf = metrics.precision_recall_f1(y, s)
    sets = metrics.set_metrics(y, s)
    return {"mAP": metrics.mean_average_precision(y, s), "CF1": prf["CF1"], "OF1": prf["OF1"],
            "example_F1": sets["example_F1"], "subset_accuracy": sets["subset_accuracy"]}


def paired_intervals(arm, control, resamples, seed=0):
    """``{key: (mean difference, low, high)}`` of arm minus control."""
    ids = arm[0][0]
    for run in arm + control:
        if not np.array_equal(run[0], ids):
            raise ValueError("the runs were evaluated on different images")
    rng = np.random.default_rng(seed)
    n = len(ids)

    def difference(index):
        diffs = []
        for (_, y, s_arm), (_, _, s_ctrl) in zip(arm, control):
            a, c = ci_metrics(y[index], s_arm[index]), ci_metrics(y[index], s_ctrl[index])
            diffs.append([a[k] - c[k] for k in CI_KEYS])
        return np.nanmean(diffs, axis=0)

    point = difference(np.arange(n))
    draws = np.array([difference(rng.integers(0, n, n)) for _ in range(resamples)])
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {k: (float(point[i]), float(low[i]), float(high[i])) for i, k in enumerate(CI_KEYS)}


def scale(key):
    return 100 if key in PERCENT or key in SET_PERCENT else 1


def markdown(names, reports, intervals, control):
    """The summary as a markdown table (mean (std) per arm; paired
    differences to the control with their 95 % intervals)."""
    head = "| metric | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for key in KEYS:
        cells = []
        for name in names:
            values = [scale(key) * r["metrics"][key] for r in reports[name]]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = 2 if scale(key) == 100 else 3
            cells.append(f"{statistics.mean(values):.{digits}f} ({std:.{digits}f})")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", f"Paired difference to `{control}` (95 % bootstrap interval over images, "
                  "pooled over seeds):", "",
              "| arm | " + " | ".join(CI_KEYS) + " |", "|" + "---|" * (len(CI_KEYS) + 1)]
    for name, diff in intervals.items():
        cells = [f"{scale(k) * d:+.2f} [{scale(k) * lo:+.2f}, {scale(k) * hi:+.2f}]"
                 for k, (d, lo, hi) in ((k, diff[k]) for k in CI_KEYS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    arms = [parse_arm(spec, FLAGS.config) for spec in FLAGS.arm]
    names = [name for name, _, _ in arms]
    if len(set(names)) != len(names) or len(names) < 2:
        raise app.UsageError(f"give at least two arms with distinct names, got {names}")
    control = FLAGS.control or names[0]
    for flag, value in (("control", control), ("budget_from", FLAGS.budget_from)):
        if value is not None and value not in names:
            raise app.UsageError(f"--{flag}={value!r} is not an arm ({names})")
    reports = run_all(arms, FLAGS.seeds)
    predictions = {name: load_predictions(name, FLAGS.seeds) for name in names}
    intervals = {name: paired_intervals(predictions[name], predictions[control],
                                        FLAGS.bootstrap)
                 for name in names if name != control}
    table = markdown(names, reports, intervals, control)
    first = reports[control][0]
    header = (f"{len(FLAGS.seeds)} seeds ({', '.join(FLAGS.seeds)}); reported split "
              f"{first['split']!r} of {first['data_dir']}, threshold 0.5; selection: "
              f"{first['selection']['split']}; percent except the ranking criteria and "
              "labels per image.\n\n")
    print("\n" + header + table)
    out = os.path.join(ROOT, FLAGS.out_dir)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(header + table)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"arms": {n: {"config": c, "bindings": b} for n, c, b in arms},
                   "control": control, "base": FLAGS.base, "budget_from": FLAGS.budget_from,
                   "seeds": FLAGS.seeds, "gin_bindings": FLAGS.gin_bindings,
                   "bootstrap": FLAGS.bootstrap,
                   "metrics": {n: [r["metrics"] for r in reports[n]] for n in names},
                   "train_seconds": {n: [r["train_seconds"] for r in reports[n]] for n in names},
                   "paired_differences": intervals}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
