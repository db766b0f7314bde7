"""RETDM building blocks: kNN table against brute force, the two-way metric
losses against hand-computed values, the memory bank."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mltf import retdm


def brute_force_knn(sets, k, counts):
    d = len(sets)
    out = []
    for i in range(d):
        cand = [(int(((sets[i] - sets[j]) ** 2).sum()), -counts[j], j)
                for j in range(d) if j != i]
        cand.sort()
        idx = [c[2] for c in cand[:k]]
        idx += [idx[-1]] * (k - len(idx))
        out.append(idx)
    return np.array(out)


@pytest.mark.parametrize("seed,c,n", [(0, 6, 300), (1, 12, 500), (2, 4, 40)])
def test_knn_table_equals_brute_force(seed, c, n):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(np.uint8)
    sets, inverse, counts = retdm.distinct_label_sets(labels)
    np.testing.assert_array_equal(sets[inverse], labels)
    idx, dist = retdm.knn_table(sets, 10, counts, chunk=17)
    np.testing.assert_array_equal(idx, brute_force_knn(sets.astype(int), 10, counts))
    ref = ((sets[:, None, :].astype(int) - sets[idx].astype(int)) ** 2).sum(-1)
    np.testing.assert_array_equal(dist, ref)
    assert not np.any(idx == np.arange(len(sets))[:, None])  # y excluded


def test_knn_pads_when_there_are_few_sets():
    sets = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)
    idx, dist = retdm.knn_table(sets, 4, counts=np.array([5, 1, 2]))
    # From [1,0]: [1,1] at d^2 1, then [0,1] at 2; padded with the last.
    assert idx[0].tolist() == [2, 1, 1, 1] and dist[0].tolist() == [1, 2, 2, 2]
    # From [1,1]: [1,0] and [0,1] both at 1; [1,0] is more frequent (5 > 1).
    assert idx[2].tolist()[:2] == [0, 1]
    with pytest.raises(ValueError, match="two distinct"):
        retdm.knn_table(sets[:1], 3)


def test_metric_loss_hand_computed():
    anchor = tf.constant([[0.0, 0.0], [0.0, 0.0]])
    positive = tf.constant([[1.0, 0.0], [1.0, 0.0]])
    # Example 0: a neighbour at 0.5 is closer than the positive (at 1): active.
    # Example 1: every neighbour is farther: the loss is 0.
    negatives = tf.constant([[[3.0, 0.0], [0.0, 0.5]],
                             [[3.0, 0.0], [0.0, 2.0]]])
    loss, active = retdm.metric_loss(anchor, positive, negatives)
    expected = -math.log(math.exp(-1) / (math.exp(-1) + math.exp(-3) + math.exp(-0.5)))
    assert active.numpy().tolist() == [True, False]
    np.testing.assert_allclose(loss.numpy(), [expected, 0.0], rtol=1e-5)


def test_metric_loss_tie_counts_as_active_and_gradients_flow():
    anchor = tf.Variable([[0.0, 0.0]])
    positive = tf.constant([[1.0, 0.0]])
    negatives = tf.constant([[[0.0, 1.0]]])  # equally far: d >= d_i holds
    with tf.GradientTape() as tape:
        loss, active = retdm.metric_loss(anchor, positive, negatives)
    assert bool(active[0]) and float(loss[0]) == pytest.approx(math.log(2), rel=1e-5)
    grad = tape.gradient(loss, anchor).numpy()
    assert grad[0, 0] < 0 < grad[0, 1]  # moves towards the positive, away from the negative


def test_memory_bank_momentum_and_age():
    bank = retdm.MemoryBank(num_sets=3, dim=2, momentum=0.75)
    bank.update(tf.constant([0, 0, 2]), tf.constant([[1.0, 1.0], [3.0, 3.0], [4.0, 0.0]]))
    # First visit: the batch mean is stored as it is.
    np.testing.assert_allclose(bank.bank.numpy(), [[2, 2], [0, 0], [4, 0]])
    assert bank.age.numpy().tolist() == [0, 1, 0]
    bank.update(tf.constant([0]), tf.constant([[6.0, 2.0]]))
    # 0.75 * [2, 2] + 0.25 * [6, 2] = [3, 2]; set 2 unchanged and one step older.
    np.testing.assert_allclose(bank.bank.numpy(), [[3, 2], [0, 0], [4, 0]])
    assert bank.age.numpy().tolist() == [0, 2, 1]
    assert bank.filled.numpy().tolist() == [True, False, True]
    np.testing.assert_allclose(bank.lookup(tf.constant([[2, 0]])).numpy(), [[[4, 0], [3, 2]]])
    with pytest.raises(ValueError, match="momentum"):
        retdm.MemoryBank(2, 2, momentum=1.0)
