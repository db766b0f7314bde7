"""benchmarks/compare.py's statistics: the paired bootstrap interval of arm
minus control, and its argument parsing (run in a subprocess from the
benchmarks folder, as the script itself runs)."""

import json
import os
import subprocess
import sys

from conftest import ROOT

SNIPPET = r"""
import json
import numpy as np
from absl import flags
import compare

flags.FLAGS(["compare"])
rng = np.random.default_rng(0)
n, c = 300, 5
ids = np.array([f"i{k:04d}" for k in range(n)])
y = (rng.random((n, c)) < 0.3).astype(np.uint8)
noise = [rng.random((n, c)) for _ in range(2)]
control = [(ids, y, 0.2 * y + 0.8 * e) for e in noise]        # a weak scorer
better = [(ids, y, 0.4 * y + 0.6 * e) for e in noise]         # the same, sharper
same = compare.paired_intervals(control, control, 200)
up = compare.paired_intervals(better, control, 200)
mismatched = [(ids[::-1].copy(), y, s) for _, _, s in control]
try:
    compare.paired_intervals(mismatched, control, 10)
    refused = False
except ValueError:
    refused = True
point = compare.ci_metrics(y, better[0][2])["mAP"] - compare.ci_metrics(y, control[0][2])["mAP"]
point += compare.ci_metrics(y, better[1][2])["mAP"] - compare.ci_metrics(y, control[1][2])["mAP"]
print(json.dumps({"same": same, "up": up, "refused": refused, "point_mAP": point / 2,
                  "arm": compare.parse_arm("bce@configs/x.gin=a = 1; b = 'c'", None),
                  "plain": compare.parse_arm("retdm", "configs/y.gin")}))
"""


def test_paired_intervals_and_arm_parsing():
    proc = subprocess.run([sys.executable, "-c", SNIPPET], cwd=os.path.join(ROOT, "benchmarks"),
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, (diff, low, high) in out["same"].items():  # an arm against itself
        assert diff == low == high == 0, key
    diff, low, high = out["up"]["mAP"]
    assert abs(diff - out["point_mAP"]) < 1e-9  # the mean over seeds of the per-seed gaps
    assert 0 < low < diff < high
    assert out["refused"]  # runs scored on different images are not paired
    assert out["arm"] == ["bce", "configs/x.gin", ["a = 1", "b = 'c'"]]
    assert out["plain"] == ["retdm", "configs/y.gin", []]


DECODED_SNIPPET = r"""
import json, os, sys
import numpy as np
from absl import app, flags
import compare

out_dir = sys.argv[1]
flags.FLAGS(["compare", f"--out_dir={out_dir}"])
rng = np.random.default_rng(0)
n, c = 200, 4
ids = np.array([f"i{k:04d}" for k in range(n)])
y = (rng.random((n, c)) < 0.4).astype(np.uint8)
y[:, 0] = 1  # so that dropping label 0 always makes a set wrong
s = (0.3 * y + 0.7 * rng.random((n, c))).astype(np.float32)
tuned, decoded = y.astype(bool), y.astype(bool)
tuned[:40, 0] = False    # 40 wrong sets: subset accuracy .80
decoded[:10, 0] = False  # 10 wrong sets: .95
runs = [(ids, y, s, decoded)] * 2, [(ids, y, s, tuned)] * 2
up = compare.paired_intervals(*runs, 200)
view = compare.view_metrics(y, s, decoded)
from mltf import metrics
# Files: a run with decoded sets and thresholds, and one without decoded sets.
for name, extra in (("a", {"decoded": decoded}), ("b", {})):
    os.makedirs(os.path.join(out_dir, f"{name}_s0"))
    np.savez(os.path.join(out_dir, f"{name}_s0", "predictions.npz"), ids=ids[::-1],
             labels=y[::-1], scores=s[::-1], **{k: v[::-1] for k, v in extra.items()})
t = [0.5, 0.6, 0.7, 0.8]
loaded_tuned = compare.load_predictions("a", ["0"], "tuned", [{"thresholds": t}])[0]
loaded = compare.load_predictions("a", ["0"], "decoded")[0]
try:
    compare.load_predictions("b", ["0"], "decoded")
    refused = False
except app.UsageError as e:
    refused = "set_decoding = True" in str(e)
print(json.dumps({"up": up, "subset": view["subset_accuracy"], "mAP": view["mAP"],
                  "mAP_scores": metrics.compute_all(y, s)["mAP"],
                  "hamming": view["hamming_loss"], "refused": refused,
                  "tuned_ok": bool(np.array_equal(loaded_tuned[3], s >= np.float32(t))),
                  "decoded_ok": bool(np.array_equal(loaded[3], decoded)
                                     and np.array_equal(loaded[0], ids))}))
"""


def test_decoded_sets_against_tuned_sets_of_the_same_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DECODED_SNIPPET, str(tmp_path / "runs")],
                          cwd=os.path.join(ROOT, "benchmarks"), capture_output=True, text=True,
                          timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Decoded minus tuned: subset accuracy .95 - .80 on every resample's
    # pairing, mAP exactly 0 (both from the same scores).
    diff, low, high = out["up"]["subset_accuracy"]
    assert abs(diff - 0.15) < 1e-12 and 0 < low < diff < high
    assert out["up"]["mAP"] == [0.0, 0.0, 0.0]
    # The sets view: set metrics from the sets, mAP from the scores.
    assert abs(out["subset"] - 0.95) < 1e-12 and abs(out["hamming"] - 10 / 800) < 1e-12
    assert out["mAP"] == out["mAP_scores"]
    assert out["refused"] and out["tuned_ok"] and out["decoded_ok"]
