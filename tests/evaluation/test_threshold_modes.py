"""Threshold modes of ``mltf.metrics.choose_thresholds`` (issue 15 item 7):
hand cases, and brute force over every prediction set a class's scores allow
with scikit-learn's metrics as the reference."""

import numpy as np
import pytest
from sklearn import metrics as sk

from mltf import metrics as M


def _col(labels, scores):
    return np.array(labels)[:, None], np.array(scores, dtype=np.float64)[:, None]


@pytest.mark.parametrize("target, expected", [
    # Precision top-k: 1, 1/2, 2/3, 3/4 (recall 3/4), 3/5, 4/6.
    (0.75, 0.325),  # top 4: the most recall at precision >= 0.75
    (0.8, 0.85),   # only the top image
    (1.0, 0.85)])
def test_precision_mode_takes_the_most_recall_at_the_target(target, expected):
    y, s = _col([1, 0, 1, 1, 0, 1], [0.9, 0.8, 0.7, 0.45, 0.2, 0.1])
    t, report = M.choose_thresholds(y, s, mode="precision", target=target)
    assert t == pytest.approx([expected])
    assert report == {"mode": "precision", "target": target, "unmet": []}


def test_precision_mode_ties_in_recall_go_to_more_precision():
    # Recall 1 at 0.75 (precision 1) and 0.45 (precision 1/2): the lowest
    # threshold reaching 0.5 would keep the negative.
    y, s = _col([1, 0, 0], [0.9, 0.6, 0.3])
    assert M.tune_thresholds(y, s, mode="precision", target=0.5) == pytest.approx([0.75])


def test_precision_target_out_of_reach_takes_the_most_precision_and_says_so():
    # Precision top-k: 0, 1/2, 1/3, 1/2: 0.5 at most, at recall 1/2 and 1.
    y, s = _col([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.3])
    y = np.concatenate([y, y], axis=1)
    s = np.concatenate([s, [[0.1], [0.9], [0.1], [0.8]]], axis=1)  # class 1: precision 1 at 0.5
    t, report = M.choose_thresholds(y, s, mode="precision", target=0.9)
    assert t == pytest.approx([0.3, 0.5])
    assert report["unmet"] == [0]


def test_recall_mode_takes_the_most_precision_at_the_target():
    # top-k: recall 1/3, 1/3, 2/3, 1, 1; precision 1, 1/2, 2/3, 3/4, 3/5.
    y, s = _col([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.4, 0.2])
    # Recall >= 0.6: top 3 (precision 2/3) or top 4 (3/4): the highest such
    # threshold (0.55) would give less precision than 0.3.
    assert M.tune_thresholds(y, s, mode="recall", target=0.6) == pytest.approx([0.3])
    assert M.tune_thresholds(y, s, mode="recall", target=1.0) == pytest.approx([0.3])
    assert M.tune_thresholds(y, s, mode="recall", target=0.3) == pytest.approx([0.85])
    # A grid that cannot reach recall 1: the most recall there (0.5: top 3), reported.
    t, report = M.choose_thresholds(y, s, mode="recall", target=1.0, grid=[0.95])
    assert t == pytest.approx([0.5]) and report["unmet"] == [0]


@pytest.mark.parametrize("beta, expected", [(0.5, 0.75), (1.0, 0.275), (2.0, 0.275)])
def test_fbeta_mode(beta, expected):
    # top-k (TP, predicted): (1,1) (1,2) (2,3) (2,4) of 2 positives.
    # F0.5: .833 .5 .714 .556; F1: .667 .5 .8 .667; F2: .556 .455 .909 .833.
    y, s = _col([1, 0, 1, 0], [0.9, 0.6, 0.45, 0.1])
    t, report = M.choose_thresholds(y, s, mode="fbeta", beta=beta)
    assert t == pytest.approx([expected]) and report == {"mode": "fbeta", "beta": beta}
    if beta == 1.0:
        np.testing.assert_array_equal(t, M.tune_thresholds(y, s))


def test_global_mode_is_one_threshold_maximising_o_f1():
    # Pooled: .9 pos, .4 pos, .35 neg, .3 neg: O-F1 1 between .35 and .4.
    y = np.array([[1, 1], [0, 0]])
    s = np.array([[0.9, 0.4], [0.3, 0.35]])
    t, report = M.choose_thresholds(y, s, mode="global")
    assert t == pytest.approx([0.375, 0.375]) and report == {"mode": "global"}
    assert M.tune_thresholds(y, s) == pytest.approx([0.5, 0.375])  # per class: 0.5 stays
    assert (M.tune_thresholds(np.zeros((2, 2)), s, mode="global") == 0.5).all()


@pytest.mark.parametrize("mode, kw", [("f1", {}), ("fbeta", {"beta": 2.0}),
                                      ("precision", {"target": 0.7}),
                                      ("recall", {"target": 0.8})])
def test_a_class_without_positives_gets_half(mode, kw):
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.9], [0.2, 0.1], [0.6, 0.3]])
    t, report = M.choose_thresholds(y, s, mode=mode, **kw)
    assert t[1] == 0.5 and report.get("unmet", []) == []


@pytest.mark.parametrize("kw, match", [
    ({"mode": "median"}, "one of"), ({"mode": "precision"}, "needs a target"),
    ({"mode": "recall", "target": 0.0}, r"\(0, 1\]"), ({"mode": "recall", "target": 1.5}, "1]"),
    ({"mode": "fbeta", "beta": 0.0}, "beta > 0")])
def test_bad_modes_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        M.check_threshold_mode(**{"beta": 1.0, "target": None, **kw})
    with pytest.raises(ValueError, match=match):
        M.tune_thresholds(np.eye(3), np.eye(3), **kw)


def _prediction_sets(col, grid):
    """Every threshold giving a distinct prediction set (or the grid's), plus 0.5."""
    cuts = np.append(np.unique(col), np.inf) if grid is None else np.asarray(grid)
    return np.append(cuts, 0.5)


def _scores(y, col, t):
    pred = col >= t
    return (sk.precision_score(y, pred, zero_division=0), sk.recall_score(y, pred),
            sk.f1_score(y, pred), sk.fbeta_score(y, pred, beta=2.0))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("grid", [None, np.linspace(0.0, 1.0, 11)])
@pytest.mark.parametrize("mode, kw", [("f1", {}), ("fbeta", {"beta": 2.0}),
                                      ("precision", {"target": 0.75}),
                                      ("recall", {"target": 0.7})])
def test_per_class_modes_against_brute_force(seed, grid, mode, kw):
    rng = np.random.default_rng(seed)
    n, c = 14 + 3 * seed, 5
    y = (rng.random((n, c)) < 0.4).astype(int)
    y[:, -1] = 0
    y[0, :-1] = 1  # every other class has a positive
    s = np.round(np.clip(0.5 * rng.random((n, c)) + 0.3 * y, 0, 1), 1)  # rounded: ties
    t, report = M.choose_thresholds(y, s, mode=mode, grid=grid, **kw)
    assert t[-1] == 0.5
    unmet = []
    for j in range(c - 1):
        cuts = _prediction_sets(s[:, j], grid)
        every = np.array([_scores(y[:, j], s[:, j], u) for u in cuts])
        got = np.array(_scores(y[:, j], s[:, j], t[j]))
        if mode in ("f1", "fbeta"):
            k = 2 if mode == "f1" else 3
            assert got[k] == pytest.approx(every[:, k].max())
            best = np.isclose(every[:, k], got[k])
        else:
            k, other = (0, 1) if mode == "precision" else (1, 0)
            ok = every[:, k] >= kw["target"]
            if ok.any():
                assert got[k] >= kw["target"]
                assert got[other] == pytest.approx(every[ok, other].max())
                best = ok & np.isclose(every[:, other], got[other])
                assert got[k] == pytest.approx(every[best, k].max())
                best &= np.isclose(every[:, k], got[k])
            else:
                unmet.append(j)
                assert got[k] == pytest.approx(every[:, k].max())
                best = np.isclose(every[:, k], got[k])
                assert got[other] == pytest.approx(every[best, other].max())
                best &= np.isclose(every[:, other], got[other])
        if best[-1]:  # 0.5 is among the best: it stays
            assert t[j] == 0.5
    assert report.get("unmet", []) == unmet


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("grid", [None, np.linspace(0.0, 1.0, 11)])
def test_global_mode_against_brute_force(seed, grid):
    rng = np.random.default_rng(seed)
    y = (rng.random((12 + seed, 4)) < 0.4).astype(int)
    s = np.round(np.clip(0.5 * rng.random(y.shape) + 0.3 * y, 0, 1), 2)
    t = M.tune_thresholds(y, s, mode="global", grid=grid)
    assert (t == t[0]).all()
    every = [sk.f1_score(y.ravel(), s.ravel() >= u) for u in _prediction_sets(s.ravel(), grid)]
    got = M.compute_all(y, s, threshold=t)["OF1"]
    assert got == pytest.approx(max(every))
    if np.isclose(every[-1], got):
        assert t[0] == 0.5
