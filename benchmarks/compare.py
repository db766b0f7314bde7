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

``--decoded`` (runs trained with ``mltf.train.set_decoding = True``, whose
``predictions.npz`` holds the ``decoded`` sets): per arm two more columns,
``<arm>+tuned`` (the sets thresholded at each run's saved thresholds, the
decoder's sets at w = 0) and ``<arm>+decoded`` (the decoded sets). In both
the set metrics (F1s, precision, recall, subset accuracy, Hamming loss,
labels per image) come from the sets and the ranking metrics (mAP, ranking
loss, one-error, coverage, average precision) from the same scores as the
arm's column, so decoding moves no ranking figure. Four more interval
tables: each arm's decoded minus its tuned sets (the same runs: what
decoding adds), the same against its sets at threshold 0.5, each arm's
decoded minus the control's tuned sets, and each arm's tuned and decoded
sets minus the control's chosen the same way.

  # BCE with the label-set prior, RETDM with its embedding and with the prior:
  python benchmarks/compare.py --config=configs/mulan_scene_mlp_retdm.gin --decoded \
      --arm="bce=mltf.train.method = 'bce';mltf.set_decoding_options.scorer = 'prior'" \
      --arm=retdm --arm="retdm_prior=mltf.set_decoding_options.scorer = 'prior'" \
      --gin_bindings="mltf.train.set_decoding = True" \
      --gin_bindings="mltf.set_decoding_options.metric = 'subset_accuracy'" \
      --out_dir=runs/compare/mulan_scene_decoded
"""

import json
import os
import statistics

import numpy as np
from absl import app, flags

from cilib import CI_KEYS, ci_metrics, paired_intervals  # noqa: F401 (compare.* in tests)
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
flags.DEFINE_bool("decoded", False, "Also the columns <arm>+tuned and <arm>+decoded and their "
                  "paired intervals (runs with mltf.train.set_decoding = True).")

# The table's rows, in order; the paired intervals are given for CI_KEYS.
KEYS = ["mAP", "CF1", "OF1", "example_F1", "subset_accuracy", "jaccard", "CP", "CR", "OP", "OR",
        "hamming_loss", "ranking_loss", "one_error", "coverage", "avg_precision",
        "labels_per_image_pred", "labels_per_image_true"]
SET_PERCENT = {"example_F1", "subset_accuracy", "jaccard"}
# Computed from the scores in every column; the other keys from the sets.
RANKING_KEYS = {"mAP", "ranking_loss", "one_error", "coverage", "avg_precision"}
VIEWS = ("tuned", "decoded")


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


def load_predictions(name, seeds, view=None, reports=None):
    """Per seed the reported split's ``(ids, labels, scores)``, sorted by id,
    and for a ``view`` the sets: ``"tuned"``, the scores at the run's saved
    thresholds (``reports``: its metrics.json per seed); ``"decoded"``, the
    ``decoded`` sets of ``predictions.npz``."""
    out = []
    for i, seed in enumerate(seeds):
        path = os.path.join(ROOT, FLAGS.out_dir, f"{name}_s{seed}", "predictions.npz")
        with np.load(path) as f:
            order = np.argsort(f["ids"])
            run = (f["ids"][order], f["labels"][order], f["scores"][order])
            if view == "decoded":
                if "decoded" not in f.files:
                    raise app.UsageError(f"{path} has no decoded sets: --decoded needs runs "
                                         "trained with mltf.train.set_decoding = True")
                run += (f["decoded"][order],)
            elif view == "tuned":
                run += (run[2] >= np.asarray(reports[i]["thresholds"], np.float32),)
        out.append(run)
    return out


def view_metrics(y, s, sets=None):
    """``compute_all``: the ranking metrics from the scores ``s``, the rest
    from ``sets`` (None: ``s`` at threshold 0.5)."""
    from mltf import metrics
    by_score = metrics.compute_all(y, s)
    if sets is None:
        return by_score
    by_set = metrics.compute_all(y, np.asarray(sets, np.float32))
    return {k: by_score[k] if k in RANKING_KEYS else v for k, v in by_set.items()}


def scale(key):
    return 100 if key in PERCENT or key in SET_PERCENT else 1


def markdown(columns, sections):
    """The summary as markdown: mean (std) over seeds per column
    (``{column: [metrics per seed]}``), then per ``(title, {row: paired
    intervals})`` section its differences with their 95 % intervals."""
    names = list(columns)
    head = "| metric | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for key in KEYS:
        cells = []
        for name in names:
            values = [scale(key) * m[key] for m in columns[name]]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = 2 if scale(key) == 100 else 3
            cells.append(f"{statistics.mean(values):.{digits}f} ({std:.{digits}f})")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for title, intervals in sections:
        lines += ["", title + " (95 % bootstrap interval over images, pooled over seeds):", "",
                  "| arm | " + " | ".join(CI_KEYS) + " |", "|" + "---|" * (len(CI_KEYS) + 1)]
        for name, diff in intervals.items():
            cells = [f"{scale(k) * d:+.2f} [{scale(k) * lo:+.2f}, {scale(k) * hi:+.2f}]"
                     for k, (d, lo, hi) in ((k, diff[k]) for k in CI_KEYS)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def decoded_sections(names, reports, control, predictions):
    """With ``--decoded``: the ``+tuned`` and ``+decoded`` columns (per
    seed) and the three interval sections (``predictions``: each arm's runs
    at threshold 0.5, as ``load_predictions`` gives them)."""
    views = {(name, v): load_predictions(name, FLAGS.seeds, v, reports[name])
             for name in names for v in VIEWS}
    columns = {f"{name}+{v}": [view_metrics(*run[1:]) for run in views[name, v]]
               for name in names for v in VIEWS}
    own = {f"{name}+decoded": paired_intervals(views[name, "decoded"], views[name, "tuned"],
                                               FLAGS.bootstrap) for name in names}
    # Per-class thresholds tuned on a small selection split can be far worse
    # than 0.5 on rare labels; decoding then gains by repairing them.
    at_half = {f"{name}+decoded": paired_intervals(views[name, "decoded"], predictions[name],
                                                   FLAGS.bootstrap) for name in names}
    against = {f"{name}+decoded": paired_intervals(views[name, "decoded"],
                                                   views[control, "tuned"], FLAGS.bootstrap)
               for name in names if name != control}
    # Each arm's sets chosen the same way as the control's: which model decodes better.
    alike = {f"{name}+{v}": paired_intervals(views[name, v], views[control, v], FLAGS.bootstrap)
             for v in VIEWS for name in names if name != control}
    sections = [("Paired difference of `<arm>+decoded` to `<arm>+tuned`, the same runs", own),
                ("Paired difference of `<arm>+decoded` to `<arm>` (threshold 0.5), the same "
                 "runs", at_half),
                (f"Paired difference of `<arm>+decoded` to `{control}+tuned`", against),
                (f"Paired difference of `<arm>+tuned` / `<arm>+decoded` to `{control}+tuned` / "
                 f"`{control}+decoded`", alike)]
    return columns, sections


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
    columns = {name: [r["metrics"] for r in reports[name]] for name in names}
    sections = [(f"Paired difference to `{control}`", intervals)]
    if FLAGS.decoded:
        more, decoded = decoded_sections(names, reports, control, predictions)
        columns.update(more)
        sections += decoded
    table = markdown(columns, sections)
    first = reports[control][0]
    header = (f"{len(FLAGS.seeds)} seeds ({', '.join(FLAGS.seeds)}); reported split "
              f"{first['split']!r} of {first['data_dir']}, threshold 0.5; selection: "
              f"{first['selection']['split']}; percent except the ranking criteria and "
              "labels per image.\n\n")
    if FLAGS.decoded:
        header += ("`+tuned`: the sets at each run's saved thresholds; `+decoded`: its "
                   "set-level decoded sets; their ranking metrics come from the arm's scores, "
                   "their other metrics from the sets.\n\n")
    print("\n" + header + table)
    out = os.path.join(ROOT, FLAGS.out_dir)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(header + table)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"arms": {n: {"config": c, "bindings": b} for n, c, b in arms},
                   "control": control, "base": FLAGS.base, "budget_from": FLAGS.budget_from,
                   "seeds": FLAGS.seeds, "gin_bindings": FLAGS.gin_bindings,
                   "bootstrap": FLAGS.bootstrap,
                   "metrics": columns,
                   "train_seconds": {n: [r["train_seconds"] for r in reports[n]] for n in names},
                   "paired_differences": intervals,
                   **({"paired_differences_decoded": dict(sections[1:])} if FLAGS.decoded
                      else {})}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
