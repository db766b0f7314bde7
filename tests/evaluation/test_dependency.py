"""mltf.metrics dependency diagnostics (co-occurrence fidelity, novel-set
rate, cardinality histogram): a hand-computed case with a label that never
occurs and an empty set, a perfect predictor, and a brute-force reference
over Python sets on random matrices."""

import itertools
import json

import numpy as np
import pytest

from mltf import metrics as M

# 5 images x 4 labels; label 3 never occurs in the truth nor the predictions.
#   img  true      predicted (score 0.9 / 0.5 on, 0.1 off)
#   0    {0,1}     {0,1}
#   1    {0}       {0,1}
#   2    {1,2}     {2}      (its 2 scores exactly 0.5: predicted, the >= rule)
#   3    {}        {}
#   4    {0,1,2}   {0}
Y = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
S = np.array([[0.9, 0.9, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.5, 0.1],
              [0.1, 0.1, 0.1, 0.1], [0.9, 0.1, 0.1, 0.1]])
# True #(i) = 3, 3, 2, 0; #(0,1) = 2, #(0,2) = 1, #(1,2) = 2.
# Predicted #(i) = 3, 2, 1, 0; #(0,1) = 2, nothing else together.
NAN = float("nan")
CO_TRUE = [[1, 2 / 3, 1 / 3, 0], [2 / 3, 1, 2 / 3, 0], [1 / 2, 1, 1, 0], [NAN] * 4]
CO_PRED = [[1, 2 / 3, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [NAN] * 4]
# Pairs i != j with true #(i) >= 1: rows 0, 1, 2 (label 3 has no support), 9 pairs.
#   row 0: |2/3 - 2/3| + |0 - 1/3| + 0 = 1/3
#   row 1: |1 - 2/3|   + |0 - 2/3| + 0 = 1
#   row 2: |0 - 1/2|   + |0 - 1|   + 0 = 3/2     -> gap (1/3 + 1 + 3/2) / 9 = 17/54
# min_support 3: rows 0 and 1, 6 pairs          -> gap (1/3 + 1) / 6 = 2/9
# Training sets {0,1}, {0}, {}, {1,2,3}: predicted {2} is novel (1/5); true {1,2}
# and {0,1,2} are (2/5). Without {} among them, img3's empty sets are novel too.
TRAIN = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]])
# Sizes: predicted 2 2 1 0 1 -> [1, 2, 2, 0]; true 2 1 2 0 3 -> [1, 1, 2, 1];
# TVD = (0 + 1 + 0 + 1) / 2 / 5 = 1/5.


def test_hand_computed_case():
    d = M.dependency_diagnostics(Y, S, TRAIN)
    np.testing.assert_allclose(d["cooccurrence_true"], CO_TRUE)
    np.testing.assert_allclose(d["cooccurrence_pred"], CO_PRED)
    assert d["cooccurrence_gap"] == pytest.approx(17 / 54) and d["num_pairs"] == 9
    assert d["novel_set_rate_pred"] == pytest.approx(1 / 5)
    assert d["novel_set_rate_true"] == pytest.approx(2 / 5)
    assert d["cardinality_pred"] == [1, 2, 2, 0] and d["cardinality_true"] == [1, 1, 2, 1]
    assert d["cardinality_tvd"] == pytest.approx(1 / 5)
    assert set(M.DEPENDENCY_KEYS) <= set(d)

    strict = M.dependency_diagnostics(Y, S, TRAIN, min_support=3)
    assert strict["cooccurrence_gap"] == pytest.approx(2 / 9) and strict["num_pairs"] == 6


def test_empty_set_is_a_set():
    d = M.dependency_diagnostics(Y, S, TRAIN[[0, 1, 3]])
    assert d["novel_set_rate_pred"] == pytest.approx(2 / 5)
    assert d["novel_set_rate_true"] == pytest.approx(3 / 5)
    everything_novel = M.dependency_diagnostics(Y, S, np.zeros((0, 4)))
    assert everything_novel["novel_set_rate_pred"] == everything_novel["novel_set_rate_true"] == 1


def test_a_label_never_predicted_counts_as_paired_with_nothing():
    # Label 2 at threshold 0.95 is never predicted: its predicted row is
    # undefined (NaN) and counts as 0 in the gap; rows 0 and 1 have no
    # predicted 2 anyway, so the gap stays 17/54 (row 2: 1/2 + 1 + 0).
    d = M.dependency_diagnostics(Y, S, TRAIN, threshold=[0.5, 0.5, 0.95, 0.5])
    assert np.isnan(d["cooccurrence_pred"][2]).all()
    assert d["cooccurrence_gap"] == pytest.approx(17 / 54)
    # Predicting nothing at all: every supported row is 0, the gap is the
    # mean of the true off-diagonal entries (2/3 + 1/3 + 2/3 + 2/3 + 1/2 + 1) / 9.
    nothing = M.dependency_diagnostics(Y, np.zeros_like(S), TRAIN)
    assert nothing["cooccurrence_gap"] == pytest.approx((23 / 6) / 9)
    assert nothing["cardinality_pred"] == [5, 0, 0, 0]
    assert nothing["cardinality_tvd"] == pytest.approx(4 / 5)  # 1/2 (4 + 1 + 2 + 1) / 5


def test_perfect_predictor():
    d = M.dependency_diagnostics(Y, Y.astype(float), TRAIN)
    assert d["cooccurrence_gap"] == 0 and d["cardinality_tvd"] == 0
    assert d["novel_set_rate_pred"] == d["novel_set_rate_true"] == pytest.approx(2 / 5)
    np.testing.assert_array_equal(d["cooccurrence_pred"], d["cooccurrence_true"])


def brute_force(y, pred, train, min_support):
    """The diagnostics from Python sets, one pair and one image at a time."""
    n, c = y.shape
    true_sets = [frozenset(np.flatnonzero(r)) for r in y]
    pred_sets = [frozenset(np.flatnonzero(r)) for r in pred]
    gaps = []
    for i, j in itertools.permutations(range(c), 2):
        holding = [t for t in true_sets if i in t]
        if len(holding) < min_support:
            continue
        p_true = sum(j in t for t in holding) / len(holding)
        p_holding = [p for p in pred_sets if i in p]
        p_pred = sum(j in p for p in p_holding) / len(p_holding) if p_holding else 0.0
        gaps.append(abs(p_pred - p_true))
    seen = {frozenset(np.flatnonzero(r)) for r in train}
    top = max(len(x) for x in true_sets + pred_sets)
    hist_p = [sum(len(p) == k for p in pred_sets) for k in range(top + 1)]
    hist_t = [sum(len(t) == k for t in true_sets) for k in range(top + 1)]
    return {"cooccurrence_gap": np.mean(gaps) if gaps else NAN,
            "novel_set_rate_pred": np.mean([p not in seen for p in pred_sets]),
            "novel_set_rate_true": np.mean([t not in seen for t in true_sets]),
            "cardinality_tvd": sum(abs(a - b) for a, b in zip(hist_p, hist_t)) / 2 / n,
            "cardinality_pred": hist_p, "cardinality_true": hist_t}


@pytest.mark.parametrize("seed", range(6))
def test_random_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, c = rng.integers(5, 30), rng.integers(2, 7)
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.5)).astype(int)
    y[:, -1] = 0  # a label that never occurs
    s = rng.random((n, c))
    t = rng.uniform(0.3, 0.8, c)
    train = (rng.random((rng.integers(0, 40), c)) < 0.3).astype(int)
    min_support = int(rng.integers(1, 4))
    got = M.dependency_diagnostics(y, s, train, threshold=t, min_support=min_support)
    want = brute_force(y.astype(bool), s >= t, train, min_support)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, nan_ok=True), key


def test_json_form_and_table_block():
    d = M.dependency_diagnostics(Y, S, TRAIN)
    full = json.loads(json.dumps(M.diagnostics_json(d)))
    assert list(full)[:4] == list(M.DEPENDENCY_KEYS)
    assert full["cooccurrence_true"][0] == pytest.approx(CO_TRUE[0])
    small = M.diagnostics_json(d, max_labels=3)
    assert "cooccurrence_pred" not in small and small["cardinality_pred"] == [1, 2, 2, 0]
    table = M.format_table(M.compute_all(Y, S), M.diagnostics_json(d))
    assert table.startswith(M.format_table(M.compute_all(Y, S)) + "\nDependency diagnostics")
    assert "0.3148" in table and "20.00 predicted, 40.00 true" in table
    assert "predicted 1 2 2 0; true 1 1 2 1" in table


def test_input_errors_and_nan_without_pairs():
    with pytest.raises(ValueError, match="train_labels has 3 labels"):
        M.dependency_diagnostics(Y, S, TRAIN[:, :3])
    with pytest.raises(ValueError, match="only 0 and 1"):
        M.dependency_diagnostics(Y, S, TRAIN * 2)
    with pytest.raises(ValueError, match="min_support"):
        M.dependency_diagnostics(Y, S, TRAIN, min_support=0)
    one_label = M.dependency_diagnostics(Y[:, :1], S[:, :1], TRAIN[:, :1])
    assert np.isnan(one_label["cooccurrence_gap"]) and one_label["num_pairs"] == 0
