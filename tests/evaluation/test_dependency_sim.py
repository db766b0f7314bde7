"""benchmarks/simlib.py, the evidence model and oracles of
benchmarks/dependency_sim.py, against its stated formulas and brute force."""

import os
import sys

import numpy as np
from scipy.stats import norm

from conftest import ROOT, benchmark_snippet

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import simlib  # noqa: E402

LABELS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], np.uint8)
MU = np.array([1.0, 2.0, 0.5])


def mixture_pdf(x, y, mu, sigma, q, r):
    sign = 2 * y - 1
    return (1 - q) * norm.pdf(x, sign * mu, sigma) + q * norm.pdf(x, sign * r * mu, sigma)


def test_evidence_has_the_stated_moments():
    q, r, sigma = 0.3, 0.25, 0.7
    y = np.tile(LABELS, (20000, 1))
    x, weak = simlib.simulate(y, MU, sigma, q, r, np.random.default_rng(0))
    assert abs(weak.mean() - q) < 0.005
    mean = MU * (1 - q + q * r)  # E[x | y = 1] = -E[x | y = 0]
    # Var x = sigma^2 + mu^2 Var(s / mu), s / mu in {1, r} with shares 1 - q, q.
    var = sigma ** 2 + MU ** 2 * q * (1 - q) * (1 - r) ** 2
    for j in range(3):
        for value, sign in ((1, 1), (0, -1)):
            column = x[y[:, j] == value, j]
            assert abs(column.mean() - sign * mean[j]) < 4 * np.sqrt(var[j] / len(column))
            assert abs(column.var() / var[j] - 1) < 0.03
    # A weak pair at r = 0 carries nothing: its x is N(0, sigma^2) whatever y.
    x0, weak0 = simlib.simulate(y, MU, sigma, q, 0.0, np.random.default_rng(1))
    faint = x0[weak0 & (y == 1)]
    assert abs(faint.mean()) < 0.01 and abs(faint.std() - sigma) < 0.01


def test_likelihood_ratio_is_the_mixtures():
    x = np.array([[-1.5, 0.0, 2.0], [0.3, -0.4, 1.1]])
    # No weak pairs: log N(x; mu) - log N(x; -mu) = 2 mu x / sigma^2.
    np.testing.assert_allclose(simlib.log_likelihood_ratio(x, MU, 0.8, 0.0, 0.0),
                               2 * MU * x / 0.64, rtol=1e-10)
    want = np.log(mixture_pdf(x, 1, MU, 0.8, 0.3, 0.2) / mixture_pdf(x, 0, MU, 0.8, 0.3, 0.2))
    np.testing.assert_allclose(simlib.log_likelihood_ratio(x, MU, 0.8, 0.3, 0.2), want,
                               rtol=1e-10)


def test_oracles_equal_brute_force_over_sets():
    sigma, q, r = 1.0, 0.3, 0.0
    train = np.array([[1, 0, 1]] * 5 + [[0, 1, 0]] * 3 + [[1, 1, 0]] * 2, np.uint8)
    x = np.random.default_rng(2).normal(0.0, 1.5, (40, 3))
    got = simlib.oracle_scores(x, train, MU, sigma, q, r)
    prior = {(1, 0, 1): 0.5, (0, 1, 0): 0.3, (1, 1, 0): 0.2}
    pi = train.mean(axis=0)
    for i in range(len(x)):
        post = {s: p * np.prod([mixture_pdf(x[i, j], s[j], MU[j], sigma, q, r)
                                for j in range(3)]) for s, p in prior.items()}
        total = sum(post.values())
        np.testing.assert_array_equal(got["set_map"][i], max(post, key=post.get))
        marginal = [sum(v for s, v in post.items() if s[j]) / total for j in range(3)]
        np.testing.assert_allclose(got["set_marginals"][i], marginal, rtol=1e-9)
        for j in range(3):
            on = pi[j] * mixture_pdf(x[i, j], 1, MU[j], sigma, q, r)
            off = (1 - pi[j]) * mixture_pdf(x[i, j], 0, MU[j], sigma, q, r)
            np.testing.assert_allclose(got["independent"][i, j], on / (on + off), rtol=1e-9)


TABLE_SNIPPET = r"""
import json
from absl import flags
import dependency_sim as sim

flags.FLAGS(["sim", "--decoding=prior", "--train_dataset=nuswide81"])
keys = sim.SET_KEYS
run = lambda v: {**{k: v for k in keys}, "labels_per_image_pred": 2.0}
tuned, half = list(sim.DECODED_TITLES)
diff = lambda d: {k: (d, d / 2, 2 * d) for k in keys}
trained = {1.0: {"retdm": {
    "paired_differences_decoded": {
        tuned: {"base+decoded": diff(0.01), "retdm+decoded": diff(0.01)},
        half: {"base+decoded": diff(0.03), "retdm+decoded": diff(0.03)}},
    "metrics": {"base": [run(0.55), run(0.75)], "retdm": [run(0.4)] * 2,
                "base+tuned": [run(0.5), run(0.7)], "base+decoded": [run(0.6), run(0.8)],
                "retdm+tuned": [run(0.4)] * 2, "retdm+decoded": [run(0.45)] * 2}},
    "diagnostics": {"base": [{"decoding_w": 0.3}, {"decoding_w": 1.0}],
                    "retdm": [{"decoding_w": 0.0}] * 2}}}
oracles = {("nuswide81", 1.0): {"set_map": run(0.75)}, ("coco2014_subset", 1.0): {"x": run(0)}}
print(json.dumps({"lines": sim.decoding_lines(oracles, trained),
                  "titles": list(sim.DECODED_TITLES)}))
"""


def test_the_decoding_table_reads_compare_py_summaries():
    out = benchmark_snippet(TABLE_SNIPPET)
    lines = out["lines"]
    # Each interval in its own section: decoded - tuned, then decoded - 0.5.
    rows = [i for i, line in enumerate(lines) if line.startswith("| 1 | base | +")]
    assert [lines[i] for i in rows] == [
        "| 1 | base | " + " | ".join([cell] * 5) + " |"
        for cell in ("+1.00 [+0.50, +2.00]", "+3.00 [+1.50, +6.00]")]
    assert "tuned thresholds" in lines[rows[0] - 4] and "0.5" in lines[rows[1] - 4]
    # Mean over the two seeds, the chosen w per seed, then the oracle of that
    # dataset and sigma only.
    assert "| 1 | base+decoded | 2 | 0.3 1 | " + " | ".join(["70.00"] * 5) + " | 2.00 |" in lines
    assert "| 1 | base+tuned | 2 |  | " + " | ".join(["60.00"] * 5) + " | 2.00 |" in lines
    assert "| 1 | base | 2 |  | " + " | ".join(["65.00"] * 5) + " | 2.00 |" in lines
    assert lines[-1] == "| 1 | oracle set_map | | | " + " | ".join(["75.00"] * 5) + " | 2.00 |"
    # The section titles are the ones compare.py --decoded writes.
    with open(os.path.join(ROOT, "benchmarks", "compare.py")) as f:
        source = f.read().replace('"\n                 "', "")
    for title in out["titles"]:
        assert f'("{title}"' in source, title


REUSE_SNIPPET = r"""
import json, os, sys, types
from absl import flags
import dependency_sim as sim

flags.FLAGS(["sim"])
folder = sys.argv[1]
calls = []


def fake_compare_py(cmd, cwd):
    seeds = next(a for a in cmd if a.startswith("--seeds=")).split("=")[1].split(",")
    calls.append(seeds)
    for ext in ("json", "md"):
        with open(os.path.join(folder, f"summary.{ext}"), "w") as f:
            json.dump({"seeds": seeds, "bootstrap": 300}, f)
    return types.SimpleNamespace(returncode=0)


sim.subprocess = types.SimpleNamespace(run=fake_compare_py)
with open(os.path.join(folder, "retdm_summary.json"), "w") as f:
    json.dump({"seeds": ["0"], "bootstrap": 300}, f)
got = [sim.compare(folder, "data", [], "retdm", seeds)["seeds"]
       for seeds in (["0"], ["0", "1", "2"], ["0", "1", "2"])]
# Data written with other flags stop the script; with these flags they are reused.
info = os.path.join(folder, "dataset_info.json")
outcomes = [sim.reuse_data(info)]
arguments = {"weak_fraction": 0.3, "weak_scale": 0.0, "mu_low": 1.0, "mu_high": 3.0,
             "mix_dim": 0, "seed": 0, "num_train": 15000, "num_test": 5000}
for q in (0.5, 0.3):
    with open(info, "w") as f:
        json.dump({"arguments": {**arguments, "weak_fraction": q}}, f)
    try:
        outcomes.append(sim.reuse_data(info))
    except SystemExit as stop:
        outcomes.append(str(stop))
print(json.dumps({"calls": calls, "got": got, "outcomes": outcomes}))
"""


def test_summaries_and_data_are_reused_only_when_they_match(tmp_path):
    out = benchmark_snippet(REUSE_SNIPPET, str(tmp_path))
    # The seed-0 summary serves seed 0 alone; asking for seeds 0-2 reruns
    # compare.py (which trains the missing seeds), whose summary then serves.
    assert out["calls"] == [["0", "1", "2"]]
    assert out["got"] == [["0"], ["0", "1", "2"], ["0", "1", "2"]]
    # No dataset yet: write it; then the one written with q = 0.5 (the
    # defaults are 0.3) stops the script and the one with the defaults serves.
    assert out["outcomes"][0] is False
    assert "'weak_fraction': 0.5" in out["outcomes"][1] and out["outcomes"][2] is True
