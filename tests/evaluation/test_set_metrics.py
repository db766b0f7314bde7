"""mltf.metrics set metrics (example-based P / R / F1, subset accuracy,
Jaccard, labels per image): hand-computed cases with empty sets, per-class
thresholds, and scikit-learn on random matrices, on each kind of empty row."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from mltf import metrics as M
from test_metrics import S, THRESHOLDS, Y, _random_case

# The 3 x 4 example of test_metrics. Sets at 0.5 (T true, P predicted):
#   img0: T {0,2},   P {0,1}:     |T∩P| 1 -> P 1/2, R 1/2, F1 1/2, J 1/3
#   img1: T {1,2,3}, P {0,1,2,3}: |T∩P| 3 -> P 3/4, R 1,   F1 6/7, J 3/4
#   img2: T {0,1},   P {0,2}:     |T∩P| 1 -> P 1/2, R 1/2, F1 1/2, J 1/3
# Means: P 7/12, R 2/3, F1 13/21 (F1 of the means would be 28/45), J 17/36;
# no exact set; |P| 8/3, |T| 7/3.
EXPECTED_05 = {"example_P": 7 / 12, "example_R": 2 / 3, "example_F1": 13 / 21,
               "subset_accuracy": 0.0, "jaccard": 17 / 36,
               "labels_per_image_pred": 8 / 3, "labels_per_image_true": 7 / 3}

# At the per-class thresholds [0.65, 0.5, 0.45, 0.7], P = 1100 / 1110 / 0010:
#   img0: P {0,1}   -> as at 0.5: 1/2, 1/2, 1/2, J 1/3
#   img1: P {0,1,2} against {1,2,3}: |T∩P| 2 -> 2/3, 2/3, 2/3, J 2/4
#   img2: P {2} against {0,1}: nothing right -> 0, 0, 0, J 0
# Means: P = R = F1 = 7/18, J 5/18; |P| 6/3.
EXPECTED_T = {"example_P": 7 / 18, "example_R": 7 / 18, "example_F1": 7 / 18,
              "subset_accuracy": 0.0, "jaccard": 5 / 18,
              "labels_per_image_pred": 2.0, "labels_per_image_true": 7 / 3}

# Empty sets, 5 images x 3 labels, at 0.5:
#   img0: T {},    P {}     both empty: P = R = F1 = J = 1, exact
#   img1: T {},    P {0}    empty truth: 0, 0, 0, J 0
#   img2: T {0},   P {}     empty prediction: 0, 0, 0, J 0
#   img3: T {0,1}, P {0,1}  exact: 1, 1, 1, J 1
#   img4: T {1,2}, P {0,1}  |T∩P| 1: 1/2, 1/2, 1/2, J 1/3
# Means: P = R = F1 = 5/2 / 5 = 1/2, J = 7/3 / 5 = 7/15, exact 2/5; |P| = |T| = 1.
YE = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 1]])
SE = np.array([[0.1, 0.2, 0.3], [0.9, 0.1, 0.1], [0.2, 0.2, 0.2],
               [0.7, 0.6, 0.1], [0.5, 0.9, 0.4]])
EXPECTED_EMPTY = {"example_P": 1 / 2, "example_R": 1 / 2, "example_F1": 1 / 2,
                  "subset_accuracy": 2 / 5, "jaccard": 7 / 15,
                  "labels_per_image_pred": 1.0, "labels_per_image_true": 1.0}


def test_hand_example_at_half_and_at_per_class_thresholds():
    assert M.set_metrics(Y, S) == pytest.approx(EXPECTED_05)
    assert M.set_metrics(Y, S, threshold=THRESHOLDS) == pytest.approx(EXPECTED_T)
    assert M.set_metrics(Y, S, threshold=np.array(THRESHOLDS)) == pytest.approx(EXPECTED_T)
    res = M.compute_all(Y, S, threshold=THRESHOLDS)
    assert {k: res[k] for k in M.SET_KEYS} == pytest.approx(EXPECTED_T)


def test_empty_sets_convention():
    assert M.set_metrics(YE, SE) == pytest.approx(EXPECTED_EMPTY)
    assert M.example_precision_recall_f1(YE, SE) == pytest.approx(
        {"example_P": 0.5, "example_R": 0.5, "example_F1": 0.5})
    assert M.subset_accuracy(YE, SE) == pytest.approx(0.4)
    assert M.jaccard_index(YE, SE) == pytest.approx(7 / 15)
    # One image of each kind on its own.
    for row, value in ((0, 1.0), (1, 0.0), (2, 0.0)):
        got = M.set_metrics(YE[row:row + 1], SE[row:row + 1])
        assert [got[k] for k in M.SET_KEYS[:5]] == [value] * 5, row


def test_threshold_is_inclusive_and_validated():
    assert M.subset_accuracy([[1, 0]], [[0.5, 0.49]]) == 1.0
    assert M.subset_accuracy([[1, 0]], [[0.5, 0.49]], threshold=[0.6, 0.5]) == 0.0
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        M.set_metrics(Y, S, threshold=[0.5, 0.5])
    for fn in (M.set_metrics, M.example_precision_recall_f1, M.subset_accuracy,
               M.jaccard_index):
        with pytest.raises(ValueError, match="only 0 and 1"):
            fn([[0, 2]], [[0.1, 0.2]])


def _sklearn_samples(y, pred, zero_division):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on every empty row
        p, r, f, _ = sk.precision_recall_fscore_support(
            y, pred, average="samples", zero_division=zero_division)
        j = sk.jaccard_score(y, pred, average="samples", zero_division=zero_division)
    return {"example_P": p, "example_R": r, "example_F1": f, "jaccard": j}


def _check_against_sklearn(y, s, t):
    """sklearn's zero_division=1 is the convention on rows with both sets
    empty, zero_division=0 on rows with one empty set: each sklearn call gets
    the rows it agrees on, the both-empty rows count 1 (hand-computed)."""
    pred = (s >= t).astype(int)
    got = M.set_metrics(y, s, threshold=t)
    both = (y.sum(1) == 0) & (pred.sum(1) == 0)
    n = len(y)
    expected = dict.fromkeys(("example_P", "example_R", "example_F1", "jaccard"), both.sum() / n)
    if (~both).any():
        rest = _sklearn_samples(y[~both], pred[~both], 0)
        for k in expected:
            expected[k] += rest[k] * (~both).sum() / n
    assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    # Jaccard: zero_division=1 agrees on every row.
    assert got["jaccard"] == pytest.approx(
        sk.jaccard_score(y, pred, average="samples", zero_division=1), abs=1e-12)
    assert got["subset_accuracy"] == pytest.approx(sk.accuracy_score(y, pred), abs=1e-12)
    assert got["labels_per_image_pred"] == pytest.approx(pred.sum(1).mean())
    assert got["labels_per_image_true"] == pytest.approx(y.sum(1).mean())
    return pred, both


@pytest.mark.parametrize("seed,n,c", [(0, 7, 3), (1, 50, 5), (2, 200, 12), (3, 31, 2)])
def test_against_sklearn_with_every_kind_of_empty_row(seed, n, c):
    y, s = _random_case(seed, n, c, ties=True)
    t = np.random.default_rng(seed).uniform(0.3, 0.9, size=c)
    y[2:4], s[2:4] = 0, 0.0  # both sets empty
    y[4], s[4] = 1, 0.0      # an empty prediction for a full truth
    s[0] = 1.0               # a full prediction for _random_case's empty truth
    _, both = _check_against_sklearn(y, s, t)
    assert both.sum() >= 2


@pytest.mark.parametrize("seed", [4, 5])
def test_against_sklearn_directly_on_rows_of_one_kind(seed):
    rng = np.random.default_rng(seed)
    y, s = _random_case(seed, 80, 6, ties=False)
    # No both-empty row: sklearn's zero_division=0 is the convention as it is.
    pred = (s >= 0.5).astype(int)
    keep = (y.sum(1) + pred.sum(1)) > 0
    y, s, pred = y[keep], s[keep], pred[keep]
    assert ((y.sum(1) == 0) | (pred.sum(1) == 0)).any()
    got, ref = M.set_metrics(y, s), _sklearn_samples(y, pred, 0)
    assert {k: got[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    # No one-sided empty row: zero_division=1 is, both-empty rows included.
    y = (rng.random((60, 6)) < 0.4).astype(int)
    y[::3] = 0
    s = np.where(y == 1, rng.uniform(0.5, 1, y.shape), rng.uniform(0, 0.5, y.shape))
    flip = rng.random(y.shape) < 0.2
    s[flip & (y.sum(1, keepdims=True) > 1)] = 0.55  # mistakes, never an empty set
    pred = (s >= 0.5).astype(int)
    assert (y.sum(1) == 0).any() and ((y.sum(1) > 0) == (pred.sum(1) > 0)).all()
    got, ref = M.set_metrics(y, s), _sklearn_samples(y, pred, 1)
    assert {k: got[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert got["subset_accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
