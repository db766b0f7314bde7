r"""Set-level decoding by each scorer on finished runs: the label-set prior
against the method's own dependency model (the WGAN-gp critic, RETDM's
embedding, with or without kNN candidates), ``w`` chosen again on each
run's selection split (``mltf.decode``'s ``mltf.training.redecode``).

  python benchmarks/decoding_scorers.py \
      --group="emotions WGAN-gp=runs/tries/emotions/wgan_gp_s*" \
      --group="scene RETDM=runs/compare/mulan_scene_retdm/retdm_s*" \
      --variants=prior,method,method_knn10 --metric=example_F1 \
      --out_dir=runs/decoding_scorers

A group is ``TITLE=GLOB`` or ``TITLE=GLOB@DATA_DIR``: the run folders of
one method on one dataset, one per seed (``DATA_DIR``: their dataset, when
it moved since the runs). A variant is ``prior`` (``log(1 + count)`` of the set among the
run's training sets), ``method`` (the run's method scorer: the critic,
RETDM's embedding; for BCE the likelihood alone) or ``method_knnK``
(RETDM: also the K training sets nearest each image in the embedding); the
other ``mltf.set_decoding_options`` keep their defaults, ``--metric``
chooses ``w``; ``--threshold_mode=global`` (any ``choose_thresholds`` mode)
chooses every run's thresholds again on its selection split, for runs whose
own are poor (give such a run its own ``--out_dir``: decodings are kept by
run and variant only). A variant the run's method cannot give (kNN without a label
embedding) is left out of that group.

Per group: each variant's set metrics on the reported split, mean (std) over
the runs, the ``w`` chosen per run and the share of sets changed; then paired
differences with 95 % bootstrap intervals over the reported images, pooled
over the runs (``cilib.paired_intervals``): each variant against the runs'
sets at their tuned thresholds and at 0.5, and each method variant against
``prior``.
mAP is the classifier's in every column (decoding moves sets, not scores).
Each run's decoding is kept in ``<out_dir>/<group>/`` and reused. Writes
``<out_dir>/summary.md`` and ``summary.json``.
"""

import glob
import json
import os
import re
import statistics
import time

import numpy as np
from absl import app, flags

from cilib import CI_KEYS, paired_intervals
from runlib import ROOT

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("group", [], "TITLE=GLOB[@DATA_DIR]: the run folders (seeds) of "
                          "one method on one dataset.")
flags.DEFINE_list("variants", ["prior", "method"], "prior, method, method_knnK.")
flags.DEFINE_string("metric", "example_F1", "The metric w maximises on the selection split.")
flags.DEFINE_string("threshold_mode", "", "A mltf.metrics.choose_thresholds mode (global, ...) "
                    "chosen again on each run's selection split; empty: the runs' own.")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples for the intervals.")
flags.DEFINE_string("out_dir", "runs/decoding_scorers", "Where the decodings and summary go.")

SET_KEYS = ["example_F1", "subset_accuracy", "CF1", "OF1", "labels_per_image_pred"]
VARIANT = re.compile(r"^(prior|method)(?:_knn(\d+))?$")


def variant_options(variant: str, metric: str) -> dict:
    """``set_decoding_options`` of a variant name."""
    from mltf.training import set_decoding
    match = VARIANT.match(variant)
    if match is None or (match.group(1) == "prior" and match.group(2)):
        raise app.UsageError(f"--variants: {variant!r} is not prior, method or method_knnK")
    return set_decoding.set_decoding_options(scorer=match.group(1),
                                             knn=int(match.group(2) or 0), metric=metric)


def decode_group(title, run_dirs, variants, data_dir=None):
    """``{variant: [per run (ids, labels, scores, sets, entry)]}`` plus the
    sets at the tuned thresholds as ``"tuned"`` and at 0.5 as ``"0.5"``,
    sorted by id; decodings reused from disk."""
    from mltf.training import redecode
    folder = os.path.join(ROOT, FLAGS.out_dir, re.sub(r"\W+", "_", title).strip("_"))
    os.makedirs(folder, exist_ok=True)
    out = {name: [] for name in ["0.5", "tuned", *variants]}
    for run_dir in run_dirs:
        run, name = None, os.path.basename(os.path.normpath(run_dir))
        for variant in variants:
            stem = os.path.join(folder, f"{name}_{variant}")
            if not os.path.isfile(stem + ".json"):
                run = run or redecode.FinishedRun(run_dir, data_dir=data_dir,
                                                  threshold_mode=FLAGS.threshold_mode or None)
                options = variant_options(variant, FLAGS.metric)
                try:
                    run.check(options)
                except ValueError as e:
                    print(f"{title}: {variant} left out: {e}")
                    continue
                start = time.perf_counter()
                entry, sets = run.decode(options)
                entry["seconds"] = round(time.perf_counter() - start, 1)
                np.savez(stem + ".npz", ids=run.ids, labels=run.evaluate[1],
                         scores=run.evaluate[2], sets=sets, thresholds=run.thresholds)
                with open(stem + ".json", "w") as f:
                    json.dump(entry, f, indent=1)
                print(f"{title}: {name} {variant}: w = {entry['w']:g}, "
                      f"{entry['seconds']:.0f} s", flush=True)
            with open(stem + ".json") as f:
                entry = json.load(f)
            with np.load(stem + ".npz") as f:
                order = np.argsort(f["ids"])
                ids, y, s = f["ids"][order], f["labels"][order], f["scores"][order]
                out[variant].append((ids, y, s, f["sets"][order], entry))
                if len(out["tuned"]) < len(out[variant]):
                    out["tuned"].append((ids, y, s, s >= f["thresholds"], None))
                    out["0.5"].append((ids, y, s, s >= 0.5, None))
    return {k: v for k, v in out.items() if v}


def set_figures(run):
    """``compute_all`` of a run's sets, mAP from its scores."""
    from mltf import metrics
    by_set = metrics.compute_all(run[1], np.asarray(run[3], np.float32))
    by_set["mAP"] = metrics.mean_average_precision(run[1], run[2])
    return by_set


def _mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def group_markdown(title, decoded):
    """A group's tables: mean (std) per variant, then the paired intervals."""
    keys = ["mAP", *SET_KEYS]
    lines = [f"### {title} ({len(decoded['tuned'])} runs)", "",
             "| sets | " + " | ".join(keys) + " | w per run | changed sets | s per run |",
             "|" + "---|" * (len(keys) + 4)]
    for name, runs in decoded.items():
        figures = [set_figures(r[:4]) for r in runs]
        cells = []
        for key in keys:
            scale = 1 if key == "labels_per_image_pred" else 100
            mean, std = _mean_std([scale * f[key] for f in figures])
            cells.append(f"{mean:.2f} ({std:.2f})" if scale == 100 else f"{mean:.3f}")
        entries = [r[4] for r in runs if r[4] is not None]
        extra = (["-", "-", "-"] if not entries else [
            ", ".join(f"{e['w']:g}" for e in entries),
            f"{100 * statistics.mean(e['changed_sets'] for e in entries):.1f} %",
            ", ".join(f"{e.get('seconds', 0):.0f}" for e in entries)])
        lines.append(f"| {name} | " + " | ".join(cells + extra) + " |")
    intervals = {}
    for name in decoded:
        if name in ("0.5", "tuned"):
            continue
        for reference in ("tuned", "0.5"):
            intervals[f"{name} - {reference}"] = paired_intervals(
                decoded[name], decoded[reference], FLAGS.bootstrap)
        if name != "prior" and "prior" in decoded:
            intervals[f"{name} - prior"] = paired_intervals(decoded[name], decoded["prior"],
                                                            FLAGS.bootstrap)
    lines += ["", "Paired differences, points (95 % bootstrap interval over the reported "
              "images, pooled over runs):", "",
              "| difference | " + " | ".join(CI_KEYS) + " |", "|" + "---|" * (len(CI_KEYS) + 1)]
    for name, diff in intervals.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"
            for d, lo, hi in (diff[k] for k in CI_KEYS)) + " |")
    return "\n".join(lines) + "\n", intervals


def main(argv):
    del argv
    if not FLAGS.group:
        raise app.UsageError("give at least one --group=TITLE=GLOB")
    for variant in FLAGS.variants:
        variant_options(variant, FLAGS.metric)  # a bad name fails before any decoding
    parts, summary = [], {}
    for spec in FLAGS.group:
        title, sep, pattern = spec.partition("=")
        pattern, _, data_dir = pattern.partition("@")
        run_dirs = sorted(d for d in glob.glob(os.path.join(ROOT, pattern)) if os.path.isdir(d))
        if not sep or not run_dirs:
            raise app.UsageError(f"--group={spec!r}: expected TITLE=GLOB naming run folders")
        decoded = decode_group(title, run_dirs, FLAGS.variants, data_dir or None)
        text, intervals = group_markdown(title, decoded)
        parts.append(text)
        summary[title] = {"runs": run_dirs, "intervals": intervals,
                          "w": {k: [r[4]["w"] for r in v] for k, v in decoded.items()
                                if k not in ("0.5", "tuned")}}
    chosen = (f"{FLAGS.threshold_mode} thresholds chosen again there" if FLAGS.threshold_mode
              else "the runs' own thresholds")
    header = (f"Set-level decoding per scorer; w chosen by {FLAGS.metric} on each run's "
              f"selection split, {chosen}; the reported split's figures, percent except labels per "
              "image; tuned: the run's own sets at its tuned thresholds; 0.5: at threshold "
              "0.5.\n\n")
    text = header + "\n".join(parts)
    print("\n" + text)
    out = os.path.join(ROOT, FLAGS.out_dir)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"metric": FLAGS.metric, "variants": FLAGS.variants,
                   "bootstrap": FLAGS.bootstrap, "groups": summary}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
