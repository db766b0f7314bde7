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
