"""Set-level decoding (mltf.decoding) against hand-enumerated candidates and
brute force over every label set of a few labels."""

import itertools
import math

import numpy as np
import pytest

from mltf import decoding, metrics


def _loglik(p_row, labels):
    return sum(math.log(q) if y else math.log(1 - q) for q, y in zip(p_row, labels))


def _as_sets(candidates, image):
    return [tuple(np.flatnonzero(s)) for s, ok in zip(candidates.sets[image],
                                                     candidates.valid[image]) if ok]


def test_candidates_are_the_thresholded_set_its_flips_and_the_likeliest_training_sets():
    p = np.array([[0.9, 0.45, 0.6, 0.1]])
    # Training sets {0} x3, {0,2}, {3}, {1,2} x2 (one row per example).
    rows = [[1, 0, 0, 0]] * 3 + [[1, 0, 1, 0], [0, 0, 0, 1]] + [[0, 1, 1, 0]] * 2
    table = decoding.LabelSetTable.from_labels(np.array(rows))
    cands = decoding.candidate_sets(p, 0.5, table, k=2, m=2)
    # Labels nearest 0.5: 1 (0.05), then 2 (0.1). Flips of {0, 2}: none, label 2,
    # label 1, both.
    flips = [(0, 2), (0,), (0, 1, 2), (0, 1)]
    # The likeliest training sets, by hand: {0,2} .9*.55*.6*.9, {0} .9*.55*.4*.9,
    # {1,2} .1*.45*.6*.9, {3} .1*.55*.4*.1: {0,2} and {0}, both repeats of flips.
    liks = {s: _loglik(p[0], [j in s for j in range(4)]) for s in [(0,), (0, 2), (3,), (1, 2)]}
    assert sorted(liks, key=liks.get, reverse=True)[:2] == [(0, 2), (0,)]
    assert [tuple(np.flatnonzero(s)) for s in cands.sets[0]] == flips + [(0, 2), (0,)]
    assert cands.valid[0].tolist() == [True] * 4 + [False, False]
    assert _as_sets(cands, 0) == flips


def test_likeliest_sets_break_equal_likelihoods_by_frequency():
    # p = 0.5: every set is equally likely; frequency, then index, decides.
    table = decoding.LabelSetTable(np.eye(3, dtype=np.uint8), np.array([1, 5, 5]))
    assert decoding.likeliest_sets(np.full((2, 3), 0.5), table, 3).tolist() == [[1, 2, 0]] * 2


def test_log_likelihood_matches_the_formula():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, (3, 4))
    sets = rng.integers(0, 2, (3, 5, 4)).astype(np.uint8)
    want = [[_loglik(p[i], sets[i, j]) for j in range(5)] for i in range(3)]
    np.testing.assert_allclose(decoding.log_likelihood(p, sets), want, rtol=1e-12)


def _all_sets(c):
    return [np.array(s, np.uint8) for s in itertools.product((0, 1), repeat=c)]


@pytest.mark.parametrize("w", [0.0, 0.7, 5.0])
def test_decode_is_the_brute_force_argmax_over_every_set(w):
    rng = np.random.default_rng(1)
    c, n = 4, 6
    p = rng.uniform(0.02, 0.98, (n, c))
    pair = rng.normal(size=(c, c))

    def dep(labels):  # a dependency score with pairwise terms
        return float(labels @ pair @ labels)

    # k = C: the flips are all 2^C sets, so decoding searches everything.
    cands = decoding.candidate_sets(p, 0.5, None, k=c)
    assert cands.valid.all() and cands.sets.shape == (n, 2 ** c, c)
    dep_scores = np.array([[dep(s) for s in cands.sets[i]] for i in range(n)])
    got = decoding.chosen_sets(
        cands, decoding.decode(decoding.log_likelihood(p, cands.sets), dep_scores,
                               cands.valid, w))
    for i in range(n):
        best = max(_all_sets(c), key=lambda s: _loglik(p[i], s) + w * dep(s))
        assert got[i].tolist() == best.tolist()
    if w == 0:  # independent marginals: the likeliest set is p >= 0.5
        assert got.tolist() == (p >= 0.5).astype(int).tolist()


def test_w_zero_picks_the_likeliest_candidate_not_the_thresholded_set():
    # Thresholds of 0.3 put label 1 (p = 0.4) in the thresholded set; a training
    # set without it is likelier, and at w = 0 it wins whatever dep says.
    p = np.array([[0.8, 0.4, 0.1]])
    table = decoding.LabelSetTable(np.array([[1, 0, 0]], np.uint8), np.array([4]))
    cands = decoding.candidate_sets(p, 0.3, table, k=0, m=1)
    assert _as_sets(cands, 0) == [(0, 1), (0,)]
    loglik = decoding.log_likelihood(p, cands.sets)
    index = decoding.decode(loglik, np.array([[100.0, -100.0]]), cands.valid, 0.0)
    assert index.tolist() == [1]


def test_shifted_likelihood_matches_the_formula_and_picks_the_thresholded_set():
    rng = np.random.default_rng(2)
    c = 4
    p = rng.uniform(0.02, 0.98, (5, c))
    t = np.array([0.2, 0.5, 0.7, 0.35])
    q = decoding.shift_to_thresholds(p, t)
    # logit q = logit p - logit t, by hand for one entry.
    assert q[0, 0] == pytest.approx(1 / (1 + math.exp(
        -(math.log(p[0, 0] / (1 - p[0, 0])) - math.log(0.2 / 0.8)))))
    cands = decoding.candidate_sets(p, t, None, k=c)
    np.testing.assert_allclose(
        decoding.log_likelihood(p, cands.sets, t),
        [[_loglik(q[i], s) for s in cands.sets[i]] for i in range(5)], rtol=1e-12)
    index = decoding.decode(decoding.log_likelihood(p, cands.sets, t), None, cands.valid, 0.0)
    assert index.tolist() == [0] * 5  # slot 0, the thresholded set
    for i in range(5):
        best = max(_all_sets(c), key=lambda s: _loglik(q[i], s))
        assert best.tolist() == (p[i] >= t).astype(int).tolist()


def test_scores_and_thresholds_beyond_epsilon_keep_their_order():
    # A rare label's score and its tuned threshold both under EPSILON (5e-10
    # and 7e-8 in the NUS-WIDE simulation), and a frequent one's both over
    # 1 - EPSILON: clipped to EPSILON they made q = 0.5 and w = 0 decoded
    # other sets than the thresholded ones.
    t = np.array([7e-8, 1 - 1e-9, 0.5])
    p = np.array([[5e-10, 1 - 5e-10, 0.6], [9e-8, 1 - 2e-9, 0.4], [0.0, 1.0, 0.5]])
    z = decoding.shift_logits(p, t)
    assert z[0, 0] == pytest.approx(math.log(5e-10 / (1 - 5e-10)) - math.log(7e-8 / (1 - 7e-8)))
    assert np.isfinite(z).all()
    q = decoding.shift_to_thresholds(p, t)
    assert ((q >= 0.5) == (p >= t)).all() and (q[:2, :2] != 0.5).all()
    cands = decoding.candidate_sets(p, t, None, k=3)
    index = decoding.decode(decoding.log_likelihood(p, cands.sets, t), None, cands.valid, 0.0)
    assert index.tolist() == [0, 0, 0]
    assert decoding.chosen_sets(cands, index).tolist() == (p >= t).astype(int).tolist()


def test_invalid_slots_are_never_chosen():
    loglik = np.array([[-1.0, -0.5, -2.0]])
    valid = np.array([[True, False, True]])
    assert decoding.decode(loglik, None, valid, 0.0).tolist() == [0]


def _two_image_case():
    # Image 0 truly {0, 1}, p = (.9, .4): {0} beats {0,1} by log(.6/.4) = 0.405.
    # Image 1 truly {}, p = (.2, .3): {} beats {0,1} by log(.56/.06) = 2.23.
    # dep = 1 on {0, 1}, 0 elsewhere: 0.405 < w < 2.23 gets both right.
    y = np.array([[1, 1], [0, 0]])
    p = np.array([[0.9, 0.4], [0.2, 0.3]])
    cands = decoding.candidate_sets(p, 0.5, None, k=2)
    dep = cands.sets.all(axis=-1).astype(float)
    return y, p, cands, dep


def test_choose_weight_by_example_f1_against_hand_values():
    y, p, cands, dep = _two_image_case()
    w, figures = decoding.choose_weight(y, p, cands, dep, grid=(0.3, 1.0, 3.0))
    # w 0 and 0.3: {0} (F1 2/3) and {} (1); w 1: both exact; w 3: {0,1} twice
    # (1 and 0).
    assert [f["w"] for f in figures] == [0.0, 0.3, 1.0, 3.0]
    np.testing.assert_allclose([f["example_F1"] for f in figures],
                               [5 / 6, 5 / 6, 1.0, 0.5])
    assert w == 1.0


def test_choose_weight_ties_go_to_the_smaller_weight_and_other_metrics():
    y, p, cands, dep = _two_image_case()
    assert decoding.choose_weight(y, p, cands, dep, grid=(0.3,))[0] == 0.0
    w, figures = decoding.choose_weight(y, p, cands, dep, grid=(1.0, 3.0),
                                        metric="subset_accuracy")
    assert w == 1.0 and [f["subset_accuracy"] for f in figures] == [0.5, 1.0, 0.5]
    assert decoding.choose_weight(y, p, cands, None)[1] == [
        {"w": 0.0, "example_F1": pytest.approx(5 / 6)}]
    with pytest.raises(ValueError, match="compute_all"):
        decoding.choose_weight(y, p, cands, dep, metric="F1")


def test_decoded_scores_threshold_back_to_the_sets_and_rank_decoded_labels_first():
    p = np.array([[1.0, 0.0, 0.7, 0.2], [0.3, 0.6, 0.0, 1.0]], np.float32)
    sets = np.array([[0, 1, 1, 0], [1, 0, 0, 1]], np.uint8)
    scores = decoding.decoded_scores(p, sets)
    assert metrics.binarize(scores, 0.5).astype(int).tolist() == sets.tolist()
    assert np.argsort(-scores[0], kind="stable").tolist() == [2, 1, 0, 3]
    got = decoding.evaluate_sets(np.array([[0, 1, 1, 0], [1, 1, 0, 1]]), p, sets)
    assert got["subset_accuracy"] == 0.5 and got["example_F1"] == pytest.approx((1 + 0.8) / 2)


def test_label_set_prior_is_log_one_plus_the_training_count():
    # Training sets {0} x3, {0,2}, {1,2} x2 over 3 labels; {2} and {} unseen.
    rows = [[1, 0, 0]] * 3 + [[1, 0, 1]] + [[0, 1, 1]] * 2
    table = decoding.LabelSetTable.from_labels(np.array(rows))
    sets = np.array([[[1, 0, 0], [0, 0, 1], [0, 1, 1]],
                     [[0, 0, 0], [1, 0, 1], [1, 0, 0]]], np.uint8)
    np.testing.assert_allclose(decoding.prior_scores(table, sets),
                               [[math.log(4), 0.0, math.log(3)], [0.0, math.log(2), math.log(4)]],
                               rtol=1e-12)


def test_label_set_prior_moves_sets_only_at_a_positive_weight():
    # Image 0, p = (.9, .4): {0} beats {0,1} by log(.6/.4) = 0.405 in the
    # likelihood; the prior, {0,1} seen 4 times and {0} once, favours {0,1} by
    # log(5/2) = 0.916, so it wins from w > 0.44 on.
    table = decoding.LabelSetTable.from_labels(np.array([[1, 1]] * 4 + [[1, 0]]))
    p = np.array([[0.9, 0.4]])
    cands = decoding.candidate_sets(p, 0.5, table, k=2, m=2)
    dep = decoding.prior_scores(table, cands.sets)
    loglik = decoding.log_likelihood(p, cands.sets, 0.5)
    for w, want in ((0.0, [1, 0]), (0.4, [1, 0]), (0.5, [1, 1])):
        got = decoding.chosen_sets(cands, decoding.decode(loglik, dep, cands.valid, w))
        assert got.tolist() == [want], w
