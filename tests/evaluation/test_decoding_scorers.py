"""benchmarks/decoding_scorers.py: the per-group table from decodings kept on
disk (two hand-made runs, one variant), against figures computed by hand."""

from conftest import benchmark_snippet

SNIPPET = r"""
import json, os, sys
import numpy as np
from absl import flags
import decoding_scorers as ds

out_dir = sys.argv[1]
flags.FLAGS(["ds", f"--out_dir={out_dir}", "--bootstrap=50"])
group = os.path.join(out_dir, "g")
os.makedirs(group)
ids = np.array(["b", "a", "c", "d"])  # out of order: the table sorts by id
y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], np.uint8)
s = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.45]], np.float32)
t = np.array([0.5, 0.42], np.float32)
# Tuned (s >= t): b {0}, a {0}, c {1}, d {1}: 2 of 4 exact. Decoded: a {0, 1}, d {}: 4 of 4.
decoded = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], np.uint8)
for run in ("r0", "r1"):
    np.savez(os.path.join(group, f"{run}_prior.npz"), ids=ids, labels=y, scores=s,
             sets=decoded, thresholds=t)
    with open(os.path.join(group, f"{run}_prior.json"), "w") as f:
        json.dump({"w": 3.0 if run == "r0" else 10.0, "changed_sets": 0.5, "seconds": 1.0}, f)
got = ds.decode_group("g", ["/nowhere/r0", "/nowhere/r1"], ["prior"])
text, intervals = ds.group_markdown("g", got)
print(json.dumps({"text": text, "intervals": intervals,
                  "tuned_ids": got["tuned"][0][0].tolist(),
                  "tuned": got["tuned"][0][3].astype(int).tolist()}))
"""


def test_table_and_intervals_from_kept_decodings(tmp_path):
    out = benchmark_snippet(SNIPPET, str(tmp_path))
    assert out["tuned_ids"] == ["a", "b", "c", "d"]
    assert out["tuned"] == [[1, 0], [1, 0], [0, 1], [0, 1]]
    lines = out["text"].splitlines()
    assert lines[0] == "### g (2 runs)"
    row = {line.split(" | ")[0]: line for line in lines if line.startswith("| ")}
    subset = {name: line.split(" | ")[3] for name, line in row.items()}
    # Subset accuracy: tuned 2/4, decoded 4/4; at 0.5: a {0}, b {0}, c {1}, d {}: 3/4.
    assert subset["| tuned"] == "50.00 (0.00)" and subset["| prior"] == "100.00 (0.00)"
    assert subset["| 0.5"] == "75.00 (0.00)"
    assert row["| prior"].endswith("| 3, 10 | 50.0 % | 1, 1 |")
    assert out["intervals"]["prior - tuned"]["subset_accuracy"][0] == 0.5
    assert out["intervals"]["prior - 0.5"]["subset_accuracy"][0] == 0.25
    assert out["intervals"]["prior - tuned"]["mAP"] == [0.0, 0.0, 0.0]
    assert sorted(out["intervals"]) == ["prior - 0.5", "prior - tuned"]
