"""The table of ``benchmarks/tries.py``, built from run folders alone: each
try's figures are its runs' SELECTION-split metrics (``metrics.json``'s
``selection.metrics``, at threshold 0.5) and the WGAN-gp critic's last-epoch
diagnostics (``training_log.csv``), never the reported test split."""

import csv
import json
import os
import statistics

# (column, heading, format); the selection metrics first, in percent.
SELECTION_COLUMNS = (("mAP", "mAP", "{:.2%}"), ("example_F1", "example-F1", "{:.2%}"),
                     ("subset_accuracy", "subset acc.", "{:.2%}"),
                     ("labels_per_image_pred", "labels/ex.", "{:.3f}"))
# Last epoch: the WGAN-gp critic's diagnostics on the selection split's
# images (real against generated sets, against other images' sets, and the
# softness baseline); RETDM's ||d(alpha J_metric)/d f_I|| / ||d L_cls / d f_I|| in
# training (how much the metric pulls next to the BCE).
LOG_COLUMNS = (("val_critic_auc_generated", "critic AUC", "{:.3f}"),
               ("val_critic_auc_mismatched", "mismatch AUC", "{:.3f}"),
               ("val_softness_auc", "softness AUC", "{:.3f}"),
               ("metric_grad_ratio", "metric/BCE grad", "{:.2g}"))
WALL_FILE = "tries_wall.json"


def run_figures(run_dir):
    """``{column: value}`` of one run folder: the selection metrics, the
    last ``training_log.csv`` row's diagnostics (absent when not logged),
    ``train_seconds`` and ``wall_seconds`` (from ``WALL_FILE``, written by
    the driver; absent for a run it did not time)."""
    with open(os.path.join(run_dir, "metrics.json")) as f:
        report = json.load(f)
    if not report["selection"].get("carved"):
        raise ValueError(f"{run_dir}: no selection split was carved; its figures would be "
                         "the reported split's")
    chosen = report["selection"]["metrics"]
    out = {key: float(chosen[key]) for key, _, _ in SELECTION_COLUMNS}
    with open(os.path.join(run_dir, "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    last = rows[-1] if rows else {}
    for key, _, _ in LOG_COLUMNS:
        if last.get(key) not in (None, ""):
            out[key] = float(last[key])
    out["train_seconds"] = float(report["train_seconds"])
    wall = os.path.join(run_dir, WALL_FILE)
    if os.path.exists(wall):
        with open(wall) as f:
            out["wall_seconds"] = float(json.load(f)["wall_seconds"])
    return out


def try_row(group, name, bindings, run_dirs):
    """One table row: every column's mean over the seeds' ``run_dirs`` (a
    column missing in any run is left out) and ``seeds``."""
    runs = [run_figures(d) for d in run_dirs]
    keys = set.intersection(*(set(r) for r in runs))
    return {"group": group, "name": name, "bindings": list(bindings), "seeds": len(runs),
            **{key: statistics.mean(r[key] for r in runs) for key in sorted(keys)}}


def markdown(rows):
    """The table as Markdown: one line per try, ``-`` where a column does
    not apply (no critic), the bindings last."""
    columns = SELECTION_COLUMNS + LOG_COLUMNS
    head = (["method", "try", "seeds"] + [h for _, h, _ in columns]
            + ["train s", "wall s", "binding"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["group"], row["name"], str(row["seeds"])]
        for key, _, form in columns:
            cells.append(form.format(row[key]).rstrip("%") if key in row else "-")
        for key in ("train_seconds", "wall_seconds"):
            cells.append(f"{row[key]:.0f}" if key in row else "-")
        cells.append("; ".join(f"`{b}`" for b in row["bindings"]) or "(the config)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
