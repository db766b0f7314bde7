r"""Label dependency at the papers' scale: real label sets, simulated evidence.

  nice -n 5 python benchmarks/dependency_sim.py --out_dir=runs/dependency_sim
  # the oracles and the kNN table only (seconds):
  python benchmarks/dependency_sim.py --train_noises= --out_dir=runs/dependency_sim

The label sets are real: NUS-WIDE (official split, 81 concepts), MIRFLICKR-25k
(24) and the MS-COCO 2014 subset (80) of ``../shared/data/labels``. Images
without a label are dropped (as the papers do), then ``--num_train`` /
``--num_test`` rows are drawn with ``--seed``: from the official train and test
rows for NUS-WIDE, else test by the seeded iterative split of
``mltf.data.splits`` and train from the rest. The evidence is synthetic, per
image and label, independent across labels given the set (``simlib``):

    x_ij = s_ij (2 y_ij - 1) + sigma e_ij,   e_ij ~ N(0, 1),
    s_ij = mu_j (probability 1 - q) or r mu_j (probability q),
    mu_j ~ Uniform(mu_low, mu_high) once per label,

q = ``--weak_fraction``, r = ``--weak_scale`` (0: a weak label has no evidence
of its own). Features are x itself, or ``x @ M`` with a fixed Gaussian M when
``--mix_dim`` > 0.

Per dataset and noise level sigma (``--noises``) the script reports the
oracles of ``simlib`` on the test rows: per-label posteriors from each label's
own evidence (``independent``), the marginals of the Bayes set posterior with
the empirical training set prior (``set_marginals``, what BCE on the whole
vector can approach) and its exact MAP set (``set_map``).

For ``--train_dataset`` at ``--train_noises`` it writes the records with
``mltf.data.writer`` (a features dataset, splits train / test) and runs two
``compare.py`` comparisons in ``<out_dir>/runs/<dataset>_sigma<s>``: RETDM
against BCE trained from scratch for the same epochs, and WGAN-gp against its
equal-budget BCE control, both from a BCE base. The RETDM comparison's control
arm is named ``base`` so that its run folder is the WGAN comparison's base
(same config, same bindings): one BCE run serves both. ``compare.py``'s
protocol holds: selection split from train, paired bootstrap intervals on the
test rows. ``--methods`` picks the comparisons, ``--wgan_seeds`` the WGAN-gp
one's seeds, ``--wgan_config`` its arm (``configs/dependency_sim_mlp_wgangp_long.gin``:
a critic warm-up and 2,000 generator updates; with ``--wgan_control_epochs=20``
the control makes as many updates).

Set-level decoding (``--decoding``, default ``prior``; empty: none): every run
trains with ``mltf.train.set_decoding = True`` and that scorer, w chosen by
``--decoding_metric`` on the selection split, and ``compare.py --decoded``
adds each arm's decoded sets against its own sets at the tuned thresholds
(``<arm>+decoded`` - ``<arm>+tuned``, the same runs), reported beside the
oracles at that noise level. Last, the RETDM kNN table (``mltf.methods.retdm.knn``) is built on
the full labelled NUS-WIDE training matrix, timed, and its and the memory
bank's bytes reported.

Writes ``<out_dir>/summary.md`` and ``summary.json``. Finished runs are reused,
and so are the data (the script stops if they were simulated with other
flags) and a comparison's summary of the same seeds and resamples (of other
seeds, compare.py reruns and trains only the missing ones).
With the defaults and ``--train_noises=0.5,2.0``: about 40 min on 2 shared CPU
cores (15-25 min per training level, 6 of them compare.py's bootstraps).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

import simlib
from runlib import ROOT

FLAGS = flags.FLAGS
flags.DEFINE_string("labels_dir", os.path.join(ROOT, "..", "shared", "data", "labels"),
                    "Folder of nuswide81.npz, mirflickr24.npz, coco2014_subset.npz.")
flags.DEFINE_list("datasets", ["nuswide81", "mirflickr24", "coco2014_subset"],
                  "Label sets the oracles run on.")
flags.DEFINE_string("train_dataset", "nuswide81", "The label sets the methods train on.")
flags.DEFINE_list("noises", ["0.5", "1.0", "2.0"], "Noise levels sigma of the oracles.")
flags.DEFINE_list("train_noises", ["0.5", "1.0", "2.0"], "Noise levels the methods train at.")
flags.DEFINE_integer("num_train", 15000, "Training rows drawn per dataset.")
flags.DEFINE_integer("num_test", 5000, "Test rows drawn per dataset.")
flags.DEFINE_float("weak_fraction", 0.3, "q: share of (image, label) pairs that are weak.")
flags.DEFINE_float("weak_scale", 0.0, "r: a weak pair's signal as a share of mu_j.")
flags.DEFINE_float("mu_low", 1.0, "Lowest per-label signal strength.")
flags.DEFINE_float("mu_high", 3.0, "Highest per-label signal strength.")
flags.DEFINE_integer("mix_dim", 0, "Features x @ M, M a fixed Gaussian [C, mix_dim]; 0: x.")
flags.DEFINE_integer("seed", 0, "Seed of the subsample, split and evidence.")
flags.DEFINE_list("seeds", ["0"], "Training seeds (compare.py --seeds).")
flags.DEFINE_list("methods", ["retdm", "wgan"], "The comparisons trained: retdm, wgan.")
flags.DEFINE_list("wgan_seeds", None, "Seeds of the WGAN-gp comparison (default: --seeds).")
flags.DEFINE_string("wgan_config", "configs/dependency_sim_mlp_wgangp.gin",
                    "The WGAN-gp arm's config (its control: the same with method bce).")
flags.DEFINE_integer("wgan_control_epochs", 0, "The control's epochs when the WGAN-gp config "
                     "has a critic warm-up (its steps are no generator updates); 0: the "
                     "config's.")
flags.DEFINE_string("decoding", "prior", "Set-level decoding of every run "
                    "(mltf.set_decoding_options.scorer: prior, method); empty: none.")
flags.DEFINE_string("decoding_metric", "subset_accuracy",
                    "What the decoding weight w maximises on the selection split.")
flags.DEFINE_integer("bootstrap", 300, "Bootstrap resamples of compare.py's intervals.")
flags.DEFINE_multi_string("gin_bindings", [], "Bindings for every training run.")
flags.DEFINE_bool("knn_table", True, "Time the RETDM kNN table at NUS-WIDE scale.")
flags.DEFINE_string("out_dir", "runs/dependency_sim", "Where the data, runs and summary go.")

# The methods' own last logged numbers (training_log.csv) that explain a result:
# RETDM's losses, how often J1 / J2 were active and the bank's age, the critic's loss.
METHOD_LOGS = ("j1", "j2", "j1_active", "j2_active", "bank_age", "bank_filled",
               "metric_grad_ratio", "critic_loss")
SET_KEYS = ["example_F1", "subset_accuracy", "mAP", "CF1", "OF1"]
RETDM = "retdm@configs/dependency_sim_mlp_retdm.gin"
# (summary label, arm, control) of the two comparisons.
COMPARISONS = (("retdm", "retdm", "base"), ("wgan", "wgan_gp", "bce"))
# compare.py --decoded's sections of each arm's decoded sets against its own
# (the same runs), and how this script's tables name them.
DECODED_TITLES = {
    "Paired difference of `<arm>+decoded` to `<arm>+tuned`, the same runs":
        "`<arm>+decoded` - `<arm>+tuned` (the sets at the run's tuned thresholds)",
    "Paired difference of `<arm>+decoded` to `<arm>` (threshold 0.5), the same runs":
        "`<arm>+decoded` - `<arm>` (its sets at threshold 0.5)"}
WGAN_CONTROL = ("bce=mltf.train.method = 'bce';"
                "mltf.train.optimizer = @generator/keras.optimizers.Adam()")


def load_split(name, num_train, num_test, seed):
    """(train [n, C] uint8, test [m, C] uint8, label names) of a label file,
    unlabelled rows dropped, subsampled with ``seed``."""
    from mltf.data import splits
    with np.load(os.path.join(FLAGS.labels_dir, f"{name}.npz")) as f:
        names = [str(n) for n in f["label_names"]]
        if "train" in f.files:
            train, test = f["train"], f["test"]
        else:
            train, test = f["labels"], None
    rng = np.random.default_rng(seed)
    train = train[train.sum(axis=1) > 0]
    if test is None:
        rows = rng.permutation(len(train))[:num_train + num_test]
        pool = train[rows]
        held = splits.holdout_mask(pool, num_test / len(pool), seed)
        return pool[~held][:num_train], pool[held], names
    test = test[test.sum(axis=1) > 0]
    return (train[rng.permutation(len(train))[:num_train]],
            test[rng.permutation(len(test))[:num_test]], names)


def evidence(labels, mu, sigma, stream):
    """The simulated evidence of ``labels``, its rng seeded by ``stream``."""
    rng = np.random.default_rng([FLAGS.seed, *stream])
    x, _ = simlib.simulate(labels, mu, sigma, FLAGS.weak_fraction, FLAGS.weak_scale, rng)
    return x


def oracle_metrics(test, train, x, mu, sigma):
    """``{oracle: {key: value}}`` on the test rows (fractions)."""
    from mltf import metrics
    scores = simlib.oracle_scores(x, train, mu, sigma, FLAGS.weak_fraction, FLAGS.weak_scale)
    out = {}
    for name, s in scores.items():
        sets = metrics.set_metrics(test, s)
        prf = metrics.precision_recall_f1(test, s)
        ranked = scores["set_marginals"] if name == "set_map" else s
        out[name] = {"example_F1": sets["example_F1"], "subset_accuracy": sets["subset_accuracy"],
                     "mAP": metrics.mean_average_precision(test, ranked),
                     "CF1": prf["CF1"], "OF1": prf["OF1"],
                     "labels_per_image_pred": sets["labels_per_image_pred"]}
    return out


def data_arguments():
    """The flags the simulated records depend on besides dataset and sigma."""
    return {k: FLAGS[k].value for k in ("weak_fraction", "weak_scale", "mu_low", "mu_high",
                                        "mix_dim", "seed", "num_train", "num_test")}


def reuse_data(info):
    """Whether the dataset of ``info`` (its dataset_info.json) is there to
    reuse; stops the script when it was simulated with other flags."""
    if not os.path.exists(info):
        return False
    # The folder's name holds the dataset and sigma only: data simulated
    # with other flags must not be trained on as if they were these.
    with open(info) as f:
        written = json.load(f).get("arguments")
    if written != data_arguments():
        sys.exit(f"{info} was written with {written}, not {data_arguments()}: use another "
                 "--out_dir")
    print(f"data: reusing {os.path.dirname(info)} (written with these flags)", flush=True)
    return True


def write_records(folder, names, splits_xy, mix):
    """Writes ``{split: (x, labels)}`` with the project's writer (skipped
    when ``folder`` already holds the dataset)."""
    from mltf.data import schema, writer
    from mltf.data.sources import Item, SourceData
    if reuse_data(os.path.join(folder, schema.INFO_FILE)):
        return
    items = {}
    for split, (x, labels) in splits_xy.items():
        features = x if mix is None else x @ mix
        items[split] = [Item(key=f"{split}-{i:06d}", labels=np.flatnonzero(y).tolist(),
                             features=f) for i, (f, y) in enumerate(zip(features, labels))]
    source = SourceData(label_names=names, splits=items, kind="features",
                        feature_dim=items["train"][0].features.shape[0])
    writer.write_dataset(source, folder, source_name="dependency_sim", overwrite=True,
                         progress=False, seed=FLAGS.seed, arguments=data_arguments())


def decoding_args():
    """compare.py's arguments for set-level decoding of every run (none
    without ``--decoding``)."""
    if not FLAGS.decoding:
        return []
    return ["--decoded", "--gin_bindings=mltf.train.set_decoding = True",
            f"--gin_bindings=mltf.set_decoding_options.scorer = '{FLAGS.decoding}'",
            f"--gin_bindings=mltf.set_decoding_options.metric = '{FLAGS.decoding_metric}'"]


def compare(run_dir, data_dir, args, label, seeds):
    """Runs ``compare.py`` with ``args``; returns its summary.json, kept as
    ``<label>_summary.json`` (and .md) since the next call overwrites it."""
    done = os.path.join(ROOT, run_dir, f"{label}_summary.json")
    if os.path.exists(done):
        with open(done) as f:
            summary = json.load(f)
        if (summary["seeds"], summary["bootstrap"]) == (list(seeds), FLAGS.bootstrap):
            print(f"{label} comparison in {run_dir}: reusing its summary", flush=True)
            return summary
        # compare.py reuses the finished runs, so only the new seeds train.
        print(f"{label} comparison in {run_dir}: its summary has seeds {summary['seeds']}, "
              f"{summary['bootstrap']} resamples; rerunning compare.py", flush=True)
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "compare.py"),
           f"--out_dir={run_dir}", f"--seeds={','.join(seeds)}",
           f"--bootstrap={FLAGS.bootstrap}",
           f"--gin_bindings=pipelines.InputConfig.data_dir = '{data_dir}'",
           *[f"--gin_bindings={b}" for b in FLAGS.gin_bindings], *decoding_args(), *args]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"compare.py {label} failed in {run_dir}")
    print(f"{label} comparison in {run_dir}: {time.time() - start:.0f} s", flush=True)
    for ext in ("json", "md"):
        os.replace(os.path.join(ROOT, run_dir, f"summary.{ext}"),
                   os.path.join(ROOT, run_dir, f"{label}_summary.{ext}"))
    with open(done) as f:
        return json.load(f)


def run_diagnostics(run_dir, arm, seeds):
    """Per seed: the dependency diagnostics of metrics.json and the method's
    last logged diagnostics (critic AUCs and margins, RETDM losses), and with
    set-level decoding the chosen weight ``w``."""
    import csv
    out = []
    for seed in seeds:
        folder = os.path.join(ROOT, run_dir, f"{arm}_s{seed}")
        with open(os.path.join(folder, "metrics.json")) as f:
            report = json.load(f)
        row = {k: v for k, v in report.get("diagnostics", {}).items()
               if isinstance(v, (int, float)) and k not in ("min_support", "num_pairs")}
        row["train_seconds"] = report["train_seconds"]
        decoding = os.path.join(folder, "set_decoding.npz")
        if os.path.exists(decoding):
            with np.load(decoding) as f:
                row["decoding_w"] = float(f["w"])
        log = os.path.join(folder, "training_log.csv")
        if os.path.exists(log):
            with open(log) as f:
                last = list(csv.DictReader(f))[-1]
            row.update({k: float(v) for k, v in last.items()
                        if v and (k in METHOD_LOGS or k.startswith(("val_critic_",
                                                                     "val_softness")))})
        out.append(row)
    return out


def train_level(name, names, train, test, mu, sigma):
    """Both comparisons at one noise level; their summaries and diagnostics."""
    tag = f"{name}_sigma{sigma:g}" + (f"_mix{FLAGS.mix_dim}" if FLAGS.mix_dim else "")
    data_dir = os.path.join(ROOT, FLAGS.out_dir, "data", tag)
    mix = (simlib.mixing_matrix(train.shape[1], FLAGS.mix_dim, FLAGS.seed)
           if FLAGS.mix_dim else None)
    write_records(data_dir, names, {"train": (evidence(train, mu, sigma, (1, int(sigma * 100))),
                                              train),
                                    "test": (evidence(test, mu, sigma, (2, int(sigma * 100))),
                                             test)}, mix)
    run_dir = os.path.join(FLAGS.out_dir, "runs", tag)
    out = {"diagnostics": {}}
    if "retdm" in FLAGS.methods:
        out["retdm"] = compare(run_dir, data_dir, ["--config=configs/dependency_sim_mlp.gin",
                                                   "--arm=base", f"--arm={RETDM}"], "retdm",
                               FLAGS.seeds)
        out["diagnostics"].update({arm: run_diagnostics(run_dir, arm, FLAGS.seeds)
                                   for arm in ("base", "retdm")})
    if "wgan" in FLAGS.methods:
        seeds = FLAGS.wgan_seeds or FLAGS.seeds
        control = WGAN_CONTROL + (f";mltf.train.epochs = {FLAGS.wgan_control_epochs}"
                                  if FLAGS.wgan_control_epochs else "")
        out["wgan"] = compare(run_dir, data_dir, ["--base=configs/dependency_sim_mlp.gin",
                                                  f"--config={FLAGS.wgan_config}",
                                                  "--arm=wgan_gp", f"--arm={control}",
                                                  "--control=bce", "--budget_from=wgan_gp"],
                              "wgan", seeds)
        out["diagnostics"].update({arm: run_diagnostics(run_dir, arm, seeds)
                                   for arm in ("bce", "wgan_gp")})
    return out


def knn_at_scale():
    """The RETDM kNN table and memory bank on NUS-WIDE's labelled training
    rows: sizes and the table's build time."""
    from mltf.methods.retdm import knn
    from mltf.methods.retdm.memory_bank import MemoryBank
    with np.load(os.path.join(FLAGS.labels_dir, "nuswide81.npz")) as f:
        labels = f["train"]
    out = {}
    for which, rows in (("all", labels), ("labelled", labels[labels.sum(axis=1) > 0])):
        sets, neighbours, seconds = knn.label_set_table(rows, k=10)
        # d = 512: the embedding of the mlp configs and of VGG-16's fc2 in the paper.
        dim = 512
        bank = MemoryBank(num_sets=sets.shape[0], dim=dim)
        out[which] = {"rows": int(rows.shape[0]), "distinct_sets": int(sets.shape[0]),
                      "seconds": seconds, "table_bytes": int(neighbours.nbytes),
                      "sets_bytes": int(sets.nbytes), "bank_dim": dim,
                      "bank_bytes": int(sum(np.asarray(w.numpy()).nbytes
                                            for w in bank.weights))}
        print(f"kNN table, NUS-WIDE train ({which}: {rows.shape[0]:,} rows, "
              f"{sets.shape[0]:,} distinct sets, k = 10): {seconds:.1f} s, "
              f"{neighbours.nbytes / 2**20:.2f} MiB; memory bank at d = {dim}: "
              f"{out[which]['bank_bytes'] / 2**20:.1f} MiB", flush=True)
    return out


def pct(value):
    return f"{100 * value:.2f}"


def interval_cells(diff):
    """The ``SET_KEYS`` cells of a paired difference ``{key: (mean, low, high)}``."""
    return " | ".join(f"{100 * diff[k][0]:+.2f} [{100 * diff[k][1]:+.2f}, "
                      f"{100 * diff[k][2]:+.2f}]" for k in SET_KEYS) + " |"


def decoding_lines(oracles, trained):
    """Set-level decoding: each arm's decoded sets against its own sets at
    the tuned thresholds and at 0.5 (the same runs), and the decoded means
    beside the oracles at that noise level."""
    head = ["| sigma | arm | " + " | ".join(SET_KEYS) + " |", "|" + "---|" * (len(SET_KEYS) + 2)]
    sections = {title: ["", f"## Set-level decoding ({FLAGS.decoding}, w by "
                            f"{FLAGS.decoding_metric} on the selection split): {text} (95 % "
                            "bootstrap interval over test rows; percent)", "", *head]
                for title, text in DECODED_TITLES.items()}
    means = ["", "Sets at threshold 0.5, at the tuned thresholds and decoded, mean over seeds "
                 "(percent; mAP from the scores; w: the chosen weight per seed), and the "
                 "oracles at that sigma:", "",
             "| sigma | arm | seeds | w | " + " | ".join(SET_KEYS) + " | labels/img |",
             "|" + "---|" * (len(SET_KEYS) + 5)]
    for sigma, result in trained.items():
        for label, arm, control in COMPARISONS:
            if label not in result:
                continue
            decoded = result[label]["paired_differences_decoded"]
            metrics = result[label]["metrics"]
            for name in (control, arm):
                for title, lines in sections.items():
                    lines.append(f"| {sigma:g} | {name} | "
                                 + interval_cells(decoded[title][f"{name}+decoded"]))
                weights = [d["decoding_w"] for d in result["diagnostics"][name]
                           if "decoding_w" in d]
                for column in (name, f"{name}+tuned", f"{name}+decoded"):
                    runs = metrics[column]
                    means.append(
                        f"| {sigma:g} | {column} | {len(runs)} | "
                        + (" ".join(f"{w:g}" for w in weights) if column.endswith("+decoded")
                           else "")
                        + " | " + " | ".join(pct(np.mean([r[k] for r in runs]))
                                             for k in SET_KEYS)
                        + f" | {np.mean([r['labels_per_image_pred'] for r in runs]):.2f} |")
        for oracle, m in oracles.get((FLAGS.train_dataset, sigma), {}).items():
            means.append(f"| {sigma:g} | oracle {oracle} | | | "
                         + " | ".join(pct(m[k]) for k in SET_KEYS)
                         + f" | {m['labels_per_image_pred']:.2f} |")
    return [line for lines in sections.values() for line in lines] + means


def markdown(oracles, trained, knn_sizes, header):
    lines = [header, "", "## Oracles (test rows; percent)", "",
             "| dataset | sigma | oracle | " + " | ".join(SET_KEYS) + " | labels/img |",
             "|" + "---|" * (len(SET_KEYS) + 4)]
    for (name, sigma), result in oracles.items():
        for oracle, m in result.items():
            lines.append(f"| {name} | {sigma:g} | {oracle} | "
                         + " | ".join(pct(m[k]) for k in SET_KEYS)
                         + f" | {m['labels_per_image_pred']:.2f} |")
    if trained:
        lines += ["", f"## Methods on {FLAGS.train_dataset} (paired difference to the control, "
                      "95 % bootstrap interval over test rows; percent)", "",
                  "| sigma | arm - control | " + " | ".join(SET_KEYS) + " |",
                  "|" + "---|" * (len(SET_KEYS) + 2)]
        for sigma, result in trained.items():
            for label, arm, control in COMPARISONS:
                if label in result:
                    lines.append(f"| {sigma:g} | {arm} - {control} | "
                                 + interval_cells(result[label]["paired_differences"][arm]))
        lines += ["", "Each arm, mean over seeds (percent), with the dependency diagnostics "
                      "and the method's last logged ones:", "",
                  "| sigma | arm | " + " | ".join(SET_KEYS) + " | diagnostics |",
                  "|" + "---|" * (len(SET_KEYS) + 3)]
        for sigma, result in trained.items():
            for label, arm, control in COMPARISONS:
                for name in (control, arm) if label in result else ():
                    runs = result[label]["metrics"][name]
                    diag = result["diagnostics"][name]
                    keys = sorted(set().union(*diag))
                    text = ", ".join(f"{k} {np.mean([d[k] for d in diag if k in d]):.3g}"
                                     for k in keys)
                    lines.append(f"| {sigma:g} | {name} | " + " | ".join(
                        pct(np.mean([r[k] for r in runs])) for k in SET_KEYS) + f" | {text} |")
        if FLAGS.decoding:
            lines += decoding_lines(oracles, trained)
    if knn_sizes:
        lines += ["", "## RETDM kNN table and memory bank at NUS-WIDE scale (k = 10)", "",
                  "| train rows | distinct sets | table build (s) | table bytes "
                  "| bank bytes (d = 512) |",
                  "|---|---|---|---|---|"]
        for which, k in knn_sizes.items():
            lines.append(f"| {k['rows']:,} ({which}) | {k['distinct_sets']:,} | "
                         f"{k['seconds']:.1f} | {k['table_bytes']:,} | {k['bank_bytes']:,} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    start = time.time()
    out = os.path.join(ROOT, FLAGS.out_dir)
    os.makedirs(out, exist_ok=True)
    oracles, trained, data = {}, {}, {}
    for name in dict.fromkeys(FLAGS.datasets + ([FLAGS.train_dataset] if FLAGS.train_noises
                                                 else [])):
        train, test, names = load_split(name, FLAGS.num_train, FLAGS.num_test, FLAGS.seed)
        mu = simlib.label_strengths(train.shape[1], np.random.default_rng([FLAGS.seed, 0]),
                                    FLAGS.mu_low, FLAGS.mu_high)
        data[name] = (train, test, names, mu)
        if name not in FLAGS.datasets:
            continue
        for sigma in map(float, FLAGS.noises):
            x = evidence(test, mu, sigma, (2, int(sigma * 100)))
            oracles[(name, sigma)] = oracle_metrics(test, train, x, mu, sigma)
            m = oracles[(name, sigma)]
            print(f"{name} sigma {sigma:g}: " + "; ".join(
                f"{o} eF1 {pct(r['example_F1'])} subset {pct(r['subset_accuracy'])} "
                f"mAP {pct(r['mAP'])}" for o, r in m.items()), flush=True)
    for sigma in map(float, FLAGS.train_noises):
        train, test, names, mu = data[FLAGS.train_dataset]
        trained[sigma] = train_level(FLAGS.train_dataset, names, train, test, mu, sigma)
    knn_sizes = knn_at_scale() if FLAGS.knn_table else None
    header = (f"Simulated evidence on real label sets: {FLAGS.num_train:,} train / "
              f"{FLAGS.num_test:,} test rows per dataset (seed {FLAGS.seed}), q = "
              f"{FLAGS.weak_fraction:g} weak pairs at r = {FLAGS.weak_scale:g}, mu_j ~ U("
              f"{FLAGS.mu_low:g}, {FLAGS.mu_high:g}), features "
              f"{'x' if not FLAGS.mix_dim else f'x @ M ({FLAGS.mix_dim})'}; training seeds "
              f"{', '.join(FLAGS.seeds)}; threshold 0.5; {time.time() - start:.0f} s wall.")
    table = markdown(oracles, trained, knn_sizes, header)
    print("\n" + table)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"flags": {k: FLAGS[k].value for k in (
                       "datasets", "train_dataset", "noises", "train_noises", "num_train",
                       "num_test", "weak_fraction", "weak_scale", "mu_low", "mu_high",
                       "mix_dim", "seed", "seeds", "methods", "wgan_seeds", "wgan_config",
                       "wgan_control_epochs", "decoding", "decoding_metric", "bootstrap",
                       "gin_bindings")},
                   "oracles": {f"{n}/sigma{s:g}": r for (n, s), r in oracles.items()},
                   "trained": {f"sigma{s:g}": {
                       "diagnostics": r["diagnostics"],
                       **{label: {k: r[label].get(k) for k in (
                           "paired_differences", "paired_differences_decoded", "metrics",
                           "train_seconds")} for label, _, _ in COMPARISONS if label in r}}
                               for s, r in trained.items()},
                   "knn_table": knn_sizes, "wall_seconds": time.time() - start}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
