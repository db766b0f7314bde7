"""Shared by the comparison scripts: resumable ``mltf.train`` runs in a
subprocess, and the mean (std) table over seeds."""

import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The papers' eleven criteria, then mAP. Percent for the first six and mAP.
KEYS = ["CP", "CR", "CF1", "OP", "OR", "OF1", "hamming_loss", "ranking_loss",
        "coverage", "one_error", "avg_precision", "mAP"]
PRF = ("CP", "CR", "CF1", "OP", "OR", "OF1")
# Precision, recall, F1 (also their top-3 variants) and mAP print in percent.
PERCENT = {*PRF, *(f"{k}_top3" for k in PRF), "mAP"}


def train_run(config, model_dir, bindings, label, reuse=True):
    """Runs ``python -m mltf.train`` unless ``reuse`` and ``model_dir``
    already has its ``metrics.json``; returns that report. Exits with the
    run's stderr tail when it fails."""
    report_path = os.path.join(ROOT, model_dir, "metrics.json")
    if not (reuse and os.path.exists(report_path)):
        cmd = [sys.executable, "-m", "mltf.train", f"--config={config}",
               f"--model_dir={model_dir}", "--overwrite",
               *[f"--gin_bindings={b}" for b in bindings]]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if proc.returncode:
            sys.exit(f"{label} failed:\n{proc.stderr[-3000:]}")
    with open(report_path) as f:
        return json.load(f)


def summary_table(reports, keys=KEYS):
    """Prints mean (std) over seeds per criterion and arm, and returns
    ``{key: [(mean, std) per arm]}`` and the mean training seconds per arm.

    Args:
        reports: ``{arm: [metrics.json report per seed]}``.
        keys: the metric keys, in order.
    """
    arms = list(reports)
    print(f"{'criterion':<15}" + "".join(f"{arm:>18}" for arm in arms))
    table = {}
    for key in keys:
        scale = 100 if key in PERCENT else 1
        row = []
        for arm in arms:
            values = [scale * r["metrics"][key] for r in reports[arm]]
            row.append((statistics.mean(values),
                        statistics.stdev(values) if len(values) > 1 else 0.0))
        table[key] = row
        print(f"{key:<15}" + "".join(f"{m:>11.3f} ({s:.3f})" for m, s in row))
    seconds = {arm: statistics.mean(r["train_seconds"] for r in reports[arm])
               for arm in arms}
    print(f"{'train seconds':<15}" + "".join(f"{seconds[arm]:>18.0f}"
                                              for arm in arms))
    return table, seconds


def run_seeds(arms, seeds, run_arm):
    """Runs ``run_arm(arm, seed)`` for every seed and arm, printing one line
    per run; returns ``{arm: [report per seed]}``."""
    import time
    reports = {arm: [] for arm in arms}
    for seed in seeds:
        for arm in arms:
            start = time.time()
            report = run_arm(arm, seed)
            reports[arm].append(report)
            m = report["metrics"]
            print(f"{arm:12} seed {seed}: mAP {100 * m['mAP']:.2f} C-F1 {100 * m['CF1']:.2f} "
                  f"O-F1 {100 * m['OF1']:.2f} (train {report['train_seconds']:.0f} s, "
                  f"wall {time.time() - start:.0f} s)", flush=True)
    return reports
