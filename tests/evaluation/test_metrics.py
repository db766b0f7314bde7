"""mltf.metrics: against scikit-learn, against hand-computed cases, the
conventions the module documents, threshold tuning and input validation."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from mltf import metrics as M
from mltf.metrics import ranking

# --------------------------------------------------------------------------
# The hand-computed example: 3 images x 4 labels.
# --------------------------------------------------------------------------

Y = np.array([[1, 0, 1, 0],
              [0, 1, 1, 1],
              [1, 1, 0, 0]])
S = np.array([[0.9, 0.6, 0.4, 0.2],
              [0.8, 0.8, 0.8, 0.6],
              [0.6, 0.1, 0.5, 0.1]])

# Predictions at 0.5 (score >= 0.5; note S[2, 2] == 0.5 is predicted):
#   img0: 1 1 0 0    img1: 1 1 1 1    img2: 1 0 1 0
# Per class (TP / predicted / positives -> P, R, F1):
#   c0: 2/3/2 -> 2/3, 1,   0.8
#   c1: 1/2/2 -> 1/2, 1/2, 1/2
#   c2: 1/2/2 -> 1/2, 1/2, 1/2
#   c3: 1/1/1 -> 1,   1,   1
# CP = (2/3 + 1/2 + 1/2 + 1) / 4 = 2/3;  CR = (1 + 1/2 + 1/2 + 1) / 4 = 3/4
# CF1 = 2 * 2/3 * 3/4 / (2/3 + 3/4) = 1 / (17/12) = 12/17 = 0.70588...
# while the mean of per-class F1 = (0.8 + 0.5 + 0.5 + 1) / 4 = 0.7.
# Pooled: TP = 5, predicted = 8, positives = 7 -> OP = 5/8, OR = 5/7,
# OF1 = 2 TP / (predicted + positives) = 10/15 = 2/3.
# Hamming: wrong entries 2 (img0: c1, c2) + 1 (img1: c0) + 2 (img2: c1, c2)
# = 5 of 12.
EXPECTED_05 = {"CP": 2 / 3, "CR": 3 / 4, "CF1": 12 / 17,
               "OP": 5 / 8, "OR": 5 / 7, "OF1": 2 / 3}
MEAN_PER_CLASS_F1 = 0.7
HAMMING_05 = 5 / 12

# Top-3 at 0.5: img1's top 3 are c0, c1, c2 (all 0.8), so c3 (0.6) is cut;
# img0 and img2 predict at most 2 labels anyway. Predictions:
#   img0: 1 1 0 0    img1: 1 1 1 0    img2: 1 0 1 0
# c3 now has no prediction: precision 0 and it still counts in CP:
#   CP = (2/3 + 1/2 + 1/2 + 0) / 4 = 5/12   (not 5/9 over the 3 predicted)
#   CR = (1 + 1/2 + 1/2 + 0) / 4 = 1/2;  CF1 = (5/12) / (11/12) = 5/11
#   TP = 4, predicted = 7, positives = 7 -> OP = OR = OF1 = 4/7.
EXPECTED_TOP3 = {"CP": 5 / 12, "CR": 1 / 2, "CF1": 5 / 11,
                 "OP": 4 / 7, "OR": 4 / 7, "OF1": 4 / 7}

# Per-class thresholds [0.65, 0.5, 0.45, 0.7]:
#   c0 >= 0.65: img0, img1 (img2's 0.6 fails) -> TP 1 of 2 predicted, 2 pos
#   c1 >= 0.5 : img0, img1                    -> TP 1 of 2, 2 pos
#   c2 >= 0.45: img1, img2 (img0's 0.4 fails) -> TP 1 of 2, 2 pos
#   c3 >= 0.7 : none (0.6 fails)              -> P = 0, R = 0 (TP 0 of 1 pos)
# CP = CR = (1/2 * 3 + 0) / 4 = 3/8 = CF1.  TP 3, predicted 6, positives 7
# -> OP = 1/2, OR = 3/7, OF1 = 6/13.  Hamming: predictions 1100 / 1110 / 0010
# against 1010 / 0111 / 1100 -> 2 + 2 + 3 = 7 of 12.
THRESHOLDS = [0.65, 0.5, 0.45, 0.7]
EXPECTED_PER_CLASS_T = {"CP": 3 / 8, "CR": 3 / 8, "CF1": 3 / 8,
                        "OP": 1 / 2, "OR": 3 / 7, "OF1": 6 / 13}
HAMMING_PER_CLASS_T = 7 / 12

# One-error: img0's top label c0 is relevant; img1's top score 0.8 is shared
# by c0 (irrelevant), c1, c2 -> pessimistic tie -> error; img2's top c0 is
# relevant.  -> 1/3.
ONE_ERROR = 1 / 3
# Coverage (rank = number of labels scored >= it; coverage = worst relevant
# rank - 1):  img0: c2 (0.4) has rank 3 -> 2;  img1: c3 (0.6) rank 4 -> 3;
# img2: c1 (0.1) ties with c3 (0.1) -> rank 4 (not 3) -> 3.  -> 8/3.
COVERAGE = 8 / 3
# Ranking loss (a tie counts as mis-ordered):
#   img0: pairs (c0,c1) ok (c0,c3) ok (c2,c1) wrong (c2,c3) ok      -> 1/4
#   img1: (c1,c0) tie (c2,c0) tie (c3,c0) 0.6 < 0.8: all wrong      -> 3/3
#   img2: (c0,c2) ok (c0,c3) ok (c1,c2) wrong (c1,c3) tie wrong     -> 2/4
#   -> (1/4 + 1 + 1/2) / 3 = 7/12.
RANKING_LOSS = 7 / 12
# Label-ranking AP (|relevant scored >= s_j| / |labels scored >= s_j|):
#   img0: c0 1/1, c2 2/3               -> 5/6
#   img1: c1 2/3, c2 2/3, c3 3/4       -> 25/36
#   img2: c0 1/1, c1 2/4               -> 3/4
#   -> (30/36 + 25/36 + 27/36) / 3 = 41/54.
LRAP = 41 / 54
# AP per class (images sorted by score, precision at each positive):
#   c0: 0.9+ 0.8- 0.6+ -> (1 + 2/3)/2 = 5/6;  c1: 0.8+ 0.6- 0.1+ -> 5/6
#   c2: 0.8+ 0.5- 0.4+ -> 5/6;                c3: 0.6+ first      -> 1
#   mAP = (3 * 5/6 + 1) / 4 = 7/8.
AP = [5 / 6, 5 / 6, 5 / 6, 1.0]
MAP = 7 / 8


def _approx_dict(got, expected):
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k


def test_hand_example_threshold_metrics_and_cf1_convention():
    got = M.precision_recall_f1(Y, S)
    _approx_dict(got, EXPECTED_05)
    # C-F1 is the harmonic mean of CP and CR, not the mean per-class F1
    # (which is what sklearn's macro F1 computes).
    assert got["CF1"] != pytest.approx(MEAN_PER_CLASS_F1)
    f1 = M.per_class_metrics(Y, S)["f1"]
    assert f1 == pytest.approx([0.8, 0.5, 0.5, 1.0])
    assert float(f1.mean()) == pytest.approx(MEAN_PER_CLASS_F1)
    assert sk.f1_score(Y, S >= 0.5, average="macro") == pytest.approx(MEAN_PER_CLASS_F1)
    assert M.hamming_loss(Y, S) == pytest.approx(HAMMING_05)


def test_hand_example_top3_and_class_with_no_prediction():
    got = M.precision_recall_f1(Y, S, top_k=3)
    _approx_dict(got, EXPECTED_TOP3)
    pc = M.per_class_metrics(Y, S, top_k=3)
    assert pc["num_predicted"].tolist() == [3, 2, 2, 0]
    assert pc["precision"][3] == 0.0 and pc["recall"][3] == 0.0
    assert M.binarize(S, top_k=3).astype(int).tolist() == [
        [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 0]]


def test_hand_example_per_class_thresholds():
    got = M.precision_recall_f1(Y, S, threshold=THRESHOLDS)
    _approx_dict(got, EXPECTED_PER_CLASS_T)
    assert M.hamming_loss(Y, S, threshold=np.array(THRESHOLDS)) == pytest.approx(
        HAMMING_PER_CLASS_T)
    assert M.binarize(S, THRESHOLDS).astype(int).tolist() == [
        [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 0]]
    # A scalar and the same value per class agree.
    assert M.precision_recall_f1(Y, S, [0.5] * 4) == M.precision_recall_f1(Y, S, 0.5)


def test_hand_example_ranking_criteria_and_map():
    assert M.one_error(Y, S) == pytest.approx(ONE_ERROR)
    assert M.coverage(Y, S) == pytest.approx(COVERAGE)
    assert M.ranking_loss(Y, S) == pytest.approx(RANKING_LOSS)
    assert M.label_ranking_average_precision(Y, S) == pytest.approx(LRAP)
    assert M.average_precision(Y, S) == pytest.approx(AP)
    m, ap = M.mean_average_precision(Y, S, return_per_class=True)
    assert m == pytest.approx(MAP) and ap == pytest.approx(AP)
    # The hand numbers agree with scikit-learn too.
    assert sk.coverage_error(Y, S) - 1 == pytest.approx(COVERAGE)
    assert sk.label_ranking_loss(Y, S) == pytest.approx(RANKING_LOSS)
    assert sk.label_ranking_average_precision_score(Y, S) == pytest.approx(LRAP)


def test_hand_example_compute_all():
    res = M.compute_all(Y, S)
    _approx_dict(res, EXPECTED_05)
    _approx_dict(res, {f"{k}_top3": v for k, v in EXPECTED_TOP3.items()})
    _approx_dict(res, {"mAP": MAP, "hamming_loss": HAMMING_05,
                       "ranking_loss": RANKING_LOSS, "one_error": ONE_ERROR,
                       "coverage": COVERAGE, "avg_precision": LRAP})
    assert (res["num_examples"], res["num_labels"], res["num_labels_with_positives"],
            res["num_examples_with_labels"]) == (3, 4, 4, 3)
    res_t = M.compute_all(Y, S, threshold=THRESHOLDS)
    _approx_dict(res_t, EXPECTED_PER_CLASS_T)
    assert res_t["hamming_loss"] == pytest.approx(HAMMING_PER_CLASS_T)
    assert res_t["mAP"] == res["mAP"]  # mAP and ranking use scores only


# --------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------

def test_threshold_is_inclusive():
    s = np.array([[0.5, 0.4999999, 0.5000001]])
    assert M.binarize(s).tolist() == [[True, False, True]]
    assert M.binarize(s, 0.5000001).tolist() == [[False, False, True]]


def test_top_k_tie_at_cut_goes_to_lower_index_and_never_exceeds_k():
    s = np.array([[0.7, 0.9, 0.7, 0.7, 0.7]])
    assert M.binarize(s, top_k=3).astype(int).tolist() == [[1, 1, 1, 0, 0]]
    rng = np.random.default_rng(0)
    s = np.round(rng.random((200, 6)), 1)  # many ties
    assert M.binarize(s, 0.0, top_k=3).sum(axis=1).max() == 3
    # k >= C: no restriction.
    assert (M.binarize(s, top_k=6) == M.binarize(s)).all()
    assert (M.binarize(s, top_k=10) == M.binarize(s)).all()


def test_unlabelled_images_are_skipped_by_one_error_and_coverage_only():
    y = np.vstack([Y, [0, 0, 0, 0]])
    s = np.vstack([S, [0.9, 0.1, 0.2, 0.3]])
    assert M.one_error(y, s) == pytest.approx(ONE_ERROR)
    assert M.coverage(y, s) == pytest.approx(COVERAGE)
    # ranking loss counts it as 0 and LRAP as 1, like sklearn.
    assert M.ranking_loss(y, s) == pytest.approx(RANKING_LOSS * 3 / 4)
    assert M.label_ranking_average_precision(y, s) == pytest.approx((LRAP * 3 + 1) / 4)
    assert M.compute_all(y, s)["num_examples_with_labels"] == 3


def test_one_error_top_ties_are_pessimistic():
    y = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]])
    s = np.array([[0.8, 0.8, 0.1],    # top tie with an irrelevant label: error
                  [0.8, 0.7, 0.1],    # clear top, relevant: right
                  [0.5, 0.5, 0.2]])   # top tie, both relevant: right
    assert M.one_error(y, s) == pytest.approx(1 / 3)


def test_constant_scores_are_not_rewarded():
    y = np.array([[1, 0, 0, 0], [0, 1, 1, 0]])
    s = np.full((2, 4), 0.3)
    assert M.one_error(y, s) == 1.0
    assert M.coverage(y, s) == 3.0
    assert M.ranking_loss(y, s) == 1.0
    assert M.average_precision(y, s) == pytest.approx([0.5, 0.5, 0.5, np.nan], nan_ok=True)


def test_classes_without_positives():
    # Recall 0 and precision as usual in CP/CR (included in the averages);
    # AP NaN and left out of mAP.
    y = np.hstack([Y, np.zeros((3, 1), dtype=int)])
    s = np.hstack([S, [[0.9], [0.1], [0.2]]])  # predicted once, wrongly
    got = M.precision_recall_f1(y, s)
    assert got["CP"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 1 + 0) / 5)
    assert got["CR"] == pytest.approx((1 + 1 / 2 + 1 / 2 + 1 + 0) / 5)
    assert got["OP"] == pytest.approx(5 / 9) and got["OR"] == pytest.approx(5 / 7)
    ap = M.average_precision(y, s)
    assert math.isnan(ap[4]) and ap[:4] == pytest.approx(AP)
    assert M.mean_average_precision(y, s) == pytest.approx(MAP)
    res = M.compute_all(y, s)
    assert res["num_labels_with_positives"] == 4 and res["mAP"] == pytest.approx(MAP)


def test_degenerate_sets_give_nan_or_zero_not_errors():
    y = np.zeros((3, 4), dtype=int)
    res = M.compute_all(y, S)
    assert math.isnan(res["mAP"]) and math.isnan(res["one_error"])
    assert math.isnan(res["coverage"])
    assert res["CR"] == 0.0 and res["OR"] == 0.0 and res["CF1"] == 0.0
    assert res["ranking_loss"] == 0.0 and res["avg_precision"] == 1.0
    # Nothing predicted: precision 0, F1 0.
    res = M.compute_all(Y, S * 0.1)
    assert res["CP"] == res["OP"] == res["CF1"] == res["OF1"] == 0.0
    # A single image and a single label work.
    assert M.compute_all([[1]], [[0.7]])["OF1"] == 1.0


def test_whole_set_not_batch_average():
    rng = np.random.default_rng(3)
    y = rng.random((60, 5)) < 0.3
    s = rng.random((60, 5))
    full = M.compute_all(y, s)
    perm = rng.permutation(60)
    assert M.compute_all(y[perm], s[perm]) == pytest.approx(full, nan_ok=True)
    halves = [M.precision_recall_f1(y[:30], s[:30])["CP"],
              M.precision_recall_f1(y[30:], s[30:])["CP"]]
    assert full["CP"] == pytest.approx(
        sk.precision_score(y, s >= 0.5, average="macro", zero_division=0))
    assert full["CP"] != pytest.approx(np.mean(halves))


# --------------------------------------------------------------------------
# Against scikit-learn on random data
# --------------------------------------------------------------------------

def _random_case(seed, n, c, ties):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.5, size=c)).astype(np.int64)
    s = rng.random((n, c))
    if ties:
        s = np.round(s, 1)
    if n > 4:
        y[0] = 0          # an image with no label
        y[1] = 1          # an image with every label
    if c > 3:
        y[:, -1] = 0      # a class with no positive
    return y, s


def _top3_reference(s, t):
    pred = np.zeros(s.shape, dtype=int)
    for i in range(s.shape[0]):
        order = sorted(range(s.shape[1]), key=lambda j: (-s[i, j], j))[:3]
        for j in order:
            pred[i, j] = int(s[i, j] >= t[j])
    return pred


def _one_error_reference(y, s):
    errs = []
    for i in range(y.shape[0]):
        if y[i].sum() == 0:
            continue
        top = np.flatnonzero(s[i] == s[i].max())
        errs.append(float(any(y[i, j] == 0 for j in top)))
    return np.mean(errs)


def _sklearn_prf(y, pred):
    """CP/CR/OP/OR/OF1 from scikit-learn; CF1 has no sklearn equivalent."""
    kw = {"zero_division": 0}
    return {"CP": sk.precision_score(y, pred, average="macro", **kw),
            "CR": sk.recall_score(y, pred, average="macro", **kw),
            "OP": sk.precision_score(y, pred, average="micro", **kw),
            "OR": sk.recall_score(y, pred, average="micro", **kw),
            "OF1": sk.f1_score(y, pred, average="micro", **kw)}


def _approx_dict_rel(got, expected):
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k


CASES = [(seed, n, c, ties) for seed, (n, c) in enumerate(
    [(1, 3), (2, 5), (17, 4), (50, 7), (300, 20), (120, 81)]) for ties in (False, True)]


@pytest.mark.parametrize("seed,n,c,ties", CASES)
def test_against_sklearn(seed, n, c, ties):
    y, s = _random_case(seed, n, c, ties)
    res = M.compute_all(y, s)
    pred = (s >= 0.5).astype(int)

    _approx_dict_rel(res, _sklearn_prf(y, pred))
    cp, cr = res["CP"], res["CR"]
    assert res["CF1"] == pytest.approx(2 * cp * cr / (cp + cr) if cp + cr else 0.0)
    assert res["hamming_loss"] == pytest.approx(sk.hamming_loss(y, pred))

    top = _top3_reference(s, [0.5] * c)
    _approx_dict_rel(res, {f"{k}_top3": v for k, v in _sklearn_prf(y, top).items()})

    ap = M.average_precision(y, s)
    has_pos = y.sum(axis=0) > 0
    ref_ap = [sk.average_precision_score(y[:, j], s[:, j]) for j in np.flatnonzero(has_pos)]
    assert ap[has_pos] == pytest.approx(ref_ap)
    assert np.isnan(ap[~has_pos]).all()
    if has_pos.any():
        assert res["mAP"] == pytest.approx(np.mean(ref_ap))

    assert res["ranking_loss"] == pytest.approx(sk.label_ranking_loss(y, s))
    lrap = sk.label_ranking_average_precision_score(y, s)
    assert res["avg_precision"] == pytest.approx(lrap)
    labelled = y.sum(axis=1) > 0
    if labelled.any():
        cov = sk.coverage_error(y[labelled], s[labelled]) - 1
        assert res["coverage"] == pytest.approx(cov)
        assert res["one_error"] == pytest.approx(_one_error_reference(y, s))

    # Per-class thresholds, plain and top-3.
    t = np.random.default_rng(seed + 100).uniform(0.2, 0.8, size=c)
    pred_t = (s >= t).astype(int)
    _approx_dict_rel(M.precision_recall_f1(y, s, threshold=t), _sklearn_prf(y, pred_t))
    _approx_dict_rel(M.precision_recall_f1(y, s, threshold=t, top_k=3),
                     _sklearn_prf(y, _top3_reference(s, t)))
    assert M.hamming_loss(y, s, t) == pytest.approx(sk.hamming_loss(y, pred_t))


def test_chunked_ranking_matches_unchunked(monkeypatch):
    y, s = _random_case(7, 200, 9, True)
    full = M.compute_all(y, s)
    monkeypatch.setattr(ranking, "_CHUNK_ENTRIES", 20)  # 2 rows per chunk
    assert M.compute_all(y, s) == pytest.approx(full, nan_ok=True)


def test_float32_and_bool_inputs():
    y, s = _random_case(5, 80, 6, False)
    ref = M.compute_all(y, s.astype(np.float32).astype(np.float64))
    assert M.compute_all(y.astype(bool), s.astype(np.float32)) == pytest.approx(ref, nan_ok=True)
    assert M.compute_all(y.astype(np.float32).tolist(), s.astype(np.float32)) == pytest.approx(
        ref, nan_ok=True)


# --------------------------------------------------------------------------
# tune_thresholds
# --------------------------------------------------------------------------

def _separable_case():
    """Class 0 positive iff score >= ~0.3 (gap 0.25..0.35), class 1 at ~0.7
    (gap 0.65..0.75), class 2 no positive, class 3 separable with a gap
    0.4..0.6 that contains 0.5."""
    n = 100
    neg0, pos0 = np.linspace(0.0, 0.25, n // 2), np.linspace(0.35, 1.0, n // 2)
    neg1, pos1 = np.linspace(0.0, 0.65, n // 2), np.linspace(0.75, 1.0, n // 2)
    neg3, pos3 = np.linspace(0.0, 0.4, n // 2), np.linspace(0.6, 1.0, n // 2)
    s = np.stack([np.concatenate([neg0, pos0]), np.concatenate([neg1, pos1]),
                  np.linspace(0.0, 1.0, n), np.concatenate([neg3, pos3])], axis=1)
    y = np.zeros((n, 4), dtype=int)
    y[n // 2:, [0, 1, 3]] = 1
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    return y[perm], s[perm]


def test_tune_thresholds_recovers_known_thresholds():
    y, s = _separable_case()
    t = M.tune_thresholds(y, s)
    # Midpoints of the gaps; 0.5 where there is no positive or 0.5 is optimal.
    assert t == pytest.approx([0.3, 0.7, 0.5, 0.5])
    assert t[2] == 0.5 and t[3] == 0.5
    f1 = M.per_class_metrics(y, s, threshold=t)["f1"]
    assert f1[[0, 1, 3]] == pytest.approx([1.0, 1.0, 1.0])
    assert M.per_class_metrics(y, s)["f1"][0] < 1.0  # 0.5 is not enough there


def test_tune_thresholds_with_grid_breaks_ties_towards_half():
    y, s = _separable_case()
    grid = np.round(np.linspace(0.05, 0.95, 19), 2)
    t = M.tune_thresholds(y, s, grid=grid)
    # Class 0: F1 = 1 for grid values in (0.25, 0.35] = {0.3, 0.35}: 0.35 is
    # closer to 0.5.  Class 1: (0.65, 0.75] = {0.7, 0.75}: 0.7 is closer.
    assert t == pytest.approx([0.35, 0.7, 0.5, 0.5])
    f1 = M.per_class_metrics(y, s, threshold=t)["f1"]
    assert f1[[0, 1, 3]] == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grid", [None, np.linspace(0.0, 1.0, 11)])
def test_tune_thresholds_never_worse_than_half(seed, grid):
    y, s = _random_case(seed, 150, 10, seed % 2 == 1)
    # Scores weakly informative so the optimum is not trivially 0.5.
    s = np.clip(0.35 * s + 0.4 * y + 0.1, 0.0, 1.0)
    t = M.tune_thresholds(y, s, grid=grid)
    assert t.shape == (10,) and np.isfinite(t).all()
    tuned = M.per_class_metrics(y, s, threshold=t)["f1"]
    base = M.per_class_metrics(y, s, threshold=0.5)["f1"]
    assert (tuned >= base - 1e-12).all()
    assert t[-1] == 0.5  # the class with no positive
    # Brute force over every threshold the class's scores allow.
    for j in np.flatnonzero(y.sum(axis=0) > 0):
        cands = np.unique(np.append(s[:, j], 0.5)) if grid is None else np.append(grid, 0.5)
        best = max(sk.f1_score(y[:, j], s[:, j] >= c, zero_division=0) for c in cands)
        assert tuned[j] == pytest.approx(best)


# --------------------------------------------------------------------------
# compute_all, format_table
# --------------------------------------------------------------------------

def test_compute_all_keys_types_and_json():
    y, s = _random_case(11, 64, 8, False)
    y[:, -1] = 1 - y[:, 0]  # every class has a positive: no NaN
    res = M.compute_all(y, s)
    assert tuple(res) == M.RESULT_KEYS
    assert set(M.RESULT_KEYS) >= {
        "CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "CR_top3", "CF1_top3",
        "OP_top3", "OR_top3", "OF1_top3", "mAP", "hamming_loss", "ranking_loss",
        "one_error", "coverage", "avg_precision", "num_examples", "num_labels",
        "example_P", "example_R", "example_F1", "subset_accuracy", "jaccard",
        "labels_per_image_pred", "labels_per_image_true"}
    for k, v in res.items():
        assert type(v) is (int if k.startswith("num_") else float), k
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    # Every key is documented in the module docstring.
    for k in M.RESULT_KEYS:
        assert k in M.__doc__, k
    # Individual functions agree with compute_all.
    assert res["one_error"] == M.one_error(y, s)
    assert res["coverage"] == M.coverage(y, s)
    assert res["ranking_loss"] == M.ranking_loss(y, s)
    assert res["avg_precision"] == M.label_ranking_average_precision(y, s)
    assert res["mAP"] == M.mean_average_precision(y, s)
    assert res["hamming_loss"] == M.hamming_loss(y, s)
    assert {k: res[k] for k in M.SET_KEYS} == M.set_metrics(y, s)


def test_format_table():
    text = M.format_table(M.compute_all(Y, S))
    # Set metrics of test_set_metrics' hand example: ex-F1 13/21, Jaccard
    # 17/36, labels per image 8/3 predicted and 7/3 true.
    for part in ("Threshold metrics", "Top-3", "Ranking criteria", "mAP",
                 "C-F1", "O-F1", "hamming loss", "one-error", "coverage",
                 "70.59", "45.45", "87.50", "2.6667", "0.7593", "3 images, 4 labels",
                 "Set metrics (%)", "ex-F1", "Jaccard", "61.90", "47.22",
                 "2.6667 predicted, 2.3333 true"):
        assert part in text, part
    text = M.format_table(M.compute_all(np.zeros((2, 3)), np.ones((2, 3)) * 0.2))
    assert "n/a" in text
    assert "n/a" in M.format_table({})


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("y,s,match", [
    (np.zeros((3, 4)), np.zeros((3, 5)), "same shape"),
    (np.zeros((3, 4)), np.zeros((4, 4)), "same shape"),
    (np.zeros(4), np.zeros(4), "2-D"),
    (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), "2-D"),
    (np.zeros((0, 4)), np.zeros((0, 4)), "N == 0"),
    (np.zeros((3, 0)), np.zeros((3, 0)), "C == 0"),
    ([[0, 2, 1]], [[0.1, 0.2, 0.3]], "only 0 and 1"),
    ([[0, -1, 1]], [[0.1, 0.2, 0.3]], "only 0 and 1"),
    ([[0, 0.5, 1]], [[0.1, 0.2, 0.3]], "only 0 and 1"),
    ([[0, np.nan, 1]], [[0.1, 0.2, 0.3]], "only 0 and 1"),
    ([["a", "b"]], [[0.1, 0.2]], "0/1"),
    ([[0, 1, 1]], [[0.1, np.nan, 0.3]], "finite"),
    ([[0, 1, 1]], [[0.1, np.inf, 0.3]], "finite"),
    ([[0, 1, 1]], [["x", "y", "z"]], "real numbers"),
    ([[0, 1], [1]], [[0.1, 0.2], [0.3]], "2-D"),
])
def test_validation_errors(y, s, match):
    for fn in (M.compute_all, M.precision_recall_f1, M.average_precision,
               M.mean_average_precision, M.hamming_loss, M.ranking_loss,
               M.one_error, M.coverage, M.label_ranking_average_precision,
               M.tune_thresholds, M.per_class_metrics, M.set_metrics,
               M.example_precision_recall_f1, M.subset_accuracy, M.jaccard_index):
        with pytest.raises(ValueError, match=match):
            fn(y, s)


def test_threshold_and_top_k_validation():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        M.compute_all(Y, S, threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        M.precision_recall_f1(Y, S, threshold=np.full((1, 4), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        M.binarize(S, [0.5, np.nan, 0.5, 0.5])
    with pytest.raises(ValueError, match="threshold"):
        M.binarize(S, "high")
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="top_k"):
            M.precision_recall_f1(Y, S, top_k=k)
    with pytest.raises(ValueError, match="grid"):
        M.tune_thresholds(Y, S, grid=[])
    with pytest.raises(ValueError, match="grid"):
        M.tune_thresholds(Y, S, grid=[0.2, np.nan])
    with pytest.raises(ValueError, match="N == 0"):
        M.binarize(np.zeros((0, 3)))
