"""benchmarks/compare.py's statistics: the paired bootstrap interval of arm
minus control, and its argument parsing (run in a subprocess from the
benchmarks folder, as the script itself runs)."""

import numpy as np

from conftest import benchmark_snippet

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
    out = benchmark_snippet(SNIPPET)
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
# The control "c": the same scores, its decoded sets the tuned ones (subset .80).
os.makedirs(os.path.join(out_dir, "c_s0"))
np.savez(os.path.join(out_dir, "c_s0", "predictions.npz"), ids=ids, labels=y, scores=s,
         decoded=tuned)
flags.FLAGS.seeds, flags.FLAGS.bootstrap = ["0"], 50
reports = {k: [{"thresholds": t}] for k in ("a", "c")}
_, sections = compare.decoded_sections(
    ["c", "a"], reports, "c", {k: compare.load_predictions(k, ["0"]) for k in ("a", "c")})
alike = dict(sections)["Paired difference of `<arm>+tuned` / `<arm>+decoded` to `c+tuned` / "
                       "`c+decoded`"]
print(json.dumps({"up": up, "subset": view["subset_accuracy"], "mAP": view["mAP"],
                  "alike": alike,
                  "mAP_scores": metrics.compute_all(y, s)["mAP"],
                  "hamming": view["hamming_loss"], "refused": refused,
                  "tuned_ok": bool(np.array_equal(loaded_tuned[3], s >= np.float32(t))),
                  "decoded_ok": bool(np.array_equal(loaded[3], decoded)
                                     and np.array_equal(loaded[0], ids))}))
"""


def test_decoded_sets_against_tuned_sets_of_the_same_runs(tmp_path):
    out = benchmark_snippet(DECODED_SNIPPET, str(tmp_path / "runs"))
    # Decoded minus tuned: subset accuracy .95 - .80 on every resample's
    # pairing, mAP exactly 0 (both from the same scores).
    diff, low, high = out["up"]["subset_accuracy"]
    assert abs(diff - 0.15) < 1e-12 and 0 < low < diff < high
    assert out["up"]["mAP"] == [0.0, 0.0, 0.0]
    # Arm against control, sets chosen alike: the tuned sets are the same
    # (same scores and thresholds), the decoded ones .95 against .80.
    assert sorted(out["alike"]) == ["a+decoded", "a+tuned"]
    assert out["alike"]["a+tuned"]["subset_accuracy"] == [0.0, 0.0, 0.0]
    assert abs(out["alike"]["a+decoded"]["subset_accuracy"][0] - 0.15) < 1e-12
    # The sets view: set metrics from the sets, mAP from the scores.
    assert abs(out["subset"] - 0.95) < 1e-12 and abs(out["hamming"] - 10 / 800) < 1e-12
    assert out["mAP"] == out["mAP_scores"]
    assert out["refused"] and out["tuned_ok"] and out["decoded_ok"]


FAST_SNIPPET = r"""
import json
import numpy as np
from absl import flags
import cilib
import compare
from mltf import metrics

flags.FLAGS(["compare"])
rng = np.random.default_rng(3)
n, c = 150, 6
ids = np.arange(n)
y = (rng.random((n, c)) < 0.3).astype(np.uint8)
y[:, 5] = 0
y[:2, 5] = 1  # two positives: many resamples draw none, so that class is left out
y[10:20] = 0  # empty true sets
arm, control = [], []
for _ in range(2):  # two seeds
    # Scores rounded to 0.1: ties within a class, and between a row's copies.
    s = np.round(0.4 * y + 0.6 * rng.random((n, c)), 1).astype(np.float32)
    control.append((ids, y, s))
    arm.append((ids, y, s, rng.random((n, c)) < 0.3))


def reference(arm, control, resamples, seed=0):
    # compare.py's loop before the vectorised path: every resample's rows
    # drawn and scored by mltf.metrics.
    rng = np.random.default_rng(seed)

    def difference(index):
        diffs = []
        for a, b in zip(arm, control):
            ma = metrics.compute_all(a[1][index], np.asarray(a[3][index], np.float32))
            mb = metrics.compute_all(b[1][index], b[2][index])
            ma["mAP"] = metrics.mean_average_precision(a[1][index], a[2][index])
            diffs.append([ma[k] - mb[k] for k in compare.CI_KEYS])
        return np.nanmean(diffs, axis=0)

    point = difference(np.arange(n))
    draws = np.array([difference(rng.integers(0, n, n)) for _ in range(resamples)])
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {k: [point[i], low[i], high[i]] for i, k in enumerate(compare.CI_KEYS)}


weights = np.array([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(5)])
rows = [np.repeat(ids, w) for w in weights]
print(json.dumps({
    "fast": compare.paired_intervals(arm, control, 120, seed=7),
    "reference": reference(arm, control, 120, seed=7),
    "ap": cilib._weighted_ap(y.astype(bool), control[0][2].astype(np.float64),
                             weights).tolist(),
    "ap_reference": [metrics.mean_average_precision(y[r], control[0][2][r]) for r in rows]}))
"""


def test_vectorised_bootstrap_equals_the_resample_loop():
    out = benchmark_snippet(FAST_SNIPPET)
    for key, values in out["reference"].items():
        assert np.allclose(out["fast"][key], values, rtol=0, atol=1e-12), key
    # mAP of weighted rows equals mAP of the rows repeated by their weights.
    assert np.allclose(out["ap"], out["ap_reference"], rtol=0, atol=1e-12)
