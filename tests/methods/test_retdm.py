"""RETDM building blocks: kNN table against brute force, the two-way metric
losses against hand-computed values, the memory bank."""

import math

import numpy as np
import pytest
import keras
import tensorflow as tf

from mltf import retdm
from roundtrip import assert_round_trip


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
    bank.update(tf.constant([0, 0, 2, 1]),
                tf.constant([[1.0, 1.0], [3.0, 3.0], [4.0, 0.0], [9.0, 9.0]]),
                tf.constant([True, True, True, False]), step=5)
    # First visit: the batch mean is stored as it is; invalid rows are skipped.
    np.testing.assert_allclose(bank.bank.numpy(), [[2, 2], [0, 0], [4, 0]])
    assert bank.last_seen.numpy().tolist() == [5, -1, 5]
    bank.update(tf.constant([0]), tf.constant([[6.0, 2.0]]), tf.constant([True]), step=7)
    # 0.75 * [2, 2] + 0.25 * [6, 2] = [3, 2]; set 2 unchanged and two steps older.
    np.testing.assert_allclose(bank.bank.numpy(), [[3, 2], [0, 0], [4, 0]])
    ids = tf.constant([0, 1, 2])
    assert bank.filled(ids).numpy().tolist() == [True, False, True]
    assert bank.age(tf.constant([0, 2]), 7).numpy().tolist() == [0, 2]
    np.testing.assert_allclose(bank.lookup(tf.constant([[2, 0]])).numpy(), [[[4, 0], [3, 2]]])
    with pytest.raises(ValueError, match="momentum"):
        retdm.MemoryBank(2, 2, momentum=1.0)


def _np_metric(anchor, positive, negatives, mask=None, tol=0.0):
    """Eq. 6/7 in numpy, row by row (``tol`` > 0: a negative within ``tol``
    of the positive's distance, a float tie, does not make the row active)."""
    out, act = [], []
    for b in range(len(anchor)):
        neg = negatives[b] if mask is None else negatives[b][mask[b]]
        d_pos = np.linalg.norm(anchor[b] - positive[b])
        d_neg = np.linalg.norm(anchor[b] - neg, axis=-1)
        scores = np.concatenate([[-d_pos], -d_neg])
        nll = -scores[0] + np.log(np.exp(scores).sum())
        active = bool((d_neg <= d_pos - tol).any())
        out.append(nll if active else 0.0)
        act.append(active)
    return np.array(out), np.array(act)


def test_masked_and_in_batch_metric_against_numpy():
    rng = np.random.default_rng(4)
    anchor, positive = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    pool = rng.normal(size=(6, 3))
    mask = rng.random((5, 6)) < 0.5
    mask[0] = False  # no negative at all: inactive, loss 0
    mask[1] = True
    loss, active = retdm.metric_loss_in_batch(*(tf.constant(a, tf.float32) for a in (
        anchor, positive, pool)), tf.constant(mask))
    want, want_active = _np_metric(anchor, positive, np.repeat(pool[None], 5, 0), mask)
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5, atol=1e-6)
    assert active.numpy().tolist() == want_active.tolist()
    assert loss.numpy()[0] == 0.0 and not active.numpy()[0]
    # The masked form of metric_loss agrees on explicit negatives.
    negatives = np.repeat(pool[None], 5, 0)
    loss2, _ = retdm.metric_loss(*(tf.constant(a, tf.float32) for a in (
        anchor, positive, negatives)), tf.constant(mask))
    np.testing.assert_allclose(loss2.numpy(), want, rtol=1e-5, atol=1e-6)


# --- the model -------------------------------------------------------------------

F, C = 6, 4


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, F)).astype("float32")
    y = (x[:, :C] + 0.5 * rng.normal(size=(n, C)) > 0.3).astype("float32")
    return x, y


def _tiny(labels, backbone="mlp", seed=1, optimizer=None, label_reduction="mean", **kwargs):
    from mltf import backbones, models
    keras.utils.set_random_seed(seed)
    if backbone == "mlp":
        b = backbones.build_backbone("mlp", (F,), hidden_sizes=(8,), dropout=0.0,
                                     embedding_dim=5)
        shape = (None, F)
    else:  # with BatchNormalization, for the stage-2 freezing test
        b = backbones.build_backbone("small_cnn", (16, 16, 3), widths=(4,),
                                     embedding_dim=5)
        shape = (None, 16, 16, 3)
    clf = models.MultiLabelClassifier(b, C, label_reduction=label_reduction)
    kwargs = {"k": 3, "label_units": 6, **kwargs}
    model = retdm.build_retdm(clf, labels, **kwargs)
    model.build(shape)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), xla=False)
    return model


def test_set_ids_are_exact_matches():
    x, y = _data()
    model = _tiny(y)
    sets, inverse, _ = retdm.distinct_label_sets(y)
    ids, found = model.set_ids(tf.constant(y))
    assert found.numpy().all()
    np.testing.assert_array_equal(model.label_sets.numpy()[ids.numpy()], y)
    np.testing.assert_array_equal(ids.numpy(), inverse)
    unseen = np.ones((1, C), np.float32)
    if not (sets == 1).all(axis=1).any():
        assert not model.set_ids(tf.constant(unseen))[1].numpy()[0]


def _unit(v):
    """v / ||v||; a zero vector (a ReLU f_y can be one) stays zero, as in
    tf.math.l2_normalize."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6)


@pytest.mark.parametrize("reduction,normalize", [("mean", False), ("sum", False),
                                                 ("mean", True)])
def test_stage_three_loss_terms_against_numpy(reduction, normalize):
    """Eq. 10 sums J_cls over the m labels (``"sum"``, the paper configs);
    eq. 12's reconstruction stays a mean either way. ``normalize_embeddings``:
    J1 and J2 on unit vectors, the reconstruction on the raw f_y."""
    x, y = _data()
    # Seed 2: with 6 ReLU label units some seeds embed two label sets at the
    # same point (dead units), and an exact distance tie is then decided by
    # float rounding, in TF and in numpy differently (keras 3.15.1's seed 1).
    model = _tiny(y, seed=2, alpha=0.7, beta=0.3, lam=0.5, label_reduction=reduction,
                  normalize_embeddings=normalize)
    x, y = x[:16], y[:16]
    # Fill the bank with known rows, so J2 has its image neighbours.
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(model.num_sets, 5)).astype("float32")
    model.bank.update(tf.range(model.num_sets), tf.constant(rows),
                      tf.ones([model.num_sets], tf.bool), step=0)
    f_i, logits = (a.numpy() for a in model.classifier(x, return_features=True))
    f_y = model.embed_labels(y).numpy()
    y_rec = model.reconstruction(model.embed_labels(y)).numpy()
    ids, _ = model.set_ids(tf.constant(y))
    sets = model.label_sets.numpy()
    neighbours = retdm.knn_table(sets, 3, retdm.distinct_label_sets(_data()[1])[2])[0]
    np.testing.assert_array_equal(model.neighbours.numpy(), neighbours)
    nb = neighbours[ids.numpy()]
    f_yn = model.embed_labels(sets[nb].reshape(-1, C)).numpy().reshape(16, 3, 5)
    bank_rows = rows[nb]
    if normalize:
        f_i, f_y, f_yn, bank_rows = (_unit(v) for v in (f_i, f_y, f_yn, bank_rows))
    # A row whose negative ties its positive (two sets embedded at one point
    # by dead ReLU units, or f_y = 0 on unit vectors) is active or not by
    # float rounding: each term must lie between the two numpy readings, and
    # equals them where no row ties (seed 2 without normalisation).
    j1, j1_lo = (_np_metric(f_i, f_y, f_yn, tol=t)[0].mean() for t in (0.0, 1e-5))
    j2, j2_lo = (_np_metric(f_y, f_i, bank_rows, tol=t)[0].mean() for t in (0.0, 1e-5))
    if not normalize:
        assert j1 == j1_lo and j2 == j2_lo  # no tie: the exact comparison below
    p = 1 / (1 + np.exp(-logits))
    per_label = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    bce = per_label.sum(axis=1).mean() if reduction == "sum" else per_label.mean()
    rec = np.mean((y - y_rec) ** 2)
    model.set_stage(3)
    logs = model.train_step((tf.constant(x), tf.constant(y)))
    np.testing.assert_allclose(float(logs["bce"]), bce, rtol=1e-5)
    np.testing.assert_allclose(float(logs["reconstruction"]), rec, rtol=1e-5)
    got = {key: float(logs[key]) for key in ("j1", "j2")}
    for key, hi, lo in (("j1", j1, j1_lo), ("j2", j2, j2_lo)):
        if hi == lo:
            np.testing.assert_allclose(got[key], hi, rtol=1e-5)
        else:
            assert lo * (1 - 1e-5) <= got[key] <= hi * (1 + 1e-5), (key, lo, got[key], hi)
    np.testing.assert_allclose(float(logs["loss"]),
                               bce + 0.7 * (got["j1"] + 0.5 * got["j2"]) + 0.3 * rec,
                               rtol=1e-5)
    assert float(logs["bank_filled"]) == 1.0


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_each_stage_trains_exactly_its_variables(stage):
    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16, 3)).astype("float32")
    y = (rng.random((8, C)) < 0.4).astype("float32")
    model = _tiny(y, backbone="small_cnn")
    label_vars = model._label_variables()
    cls_train = model.classifier.trainable_variables
    cls_state = model.classifier.non_trainable_variables  # BatchNorm statistics
    assert any("moving" in v.path for v in cls_state)
    before = [v.numpy().copy() for v in label_vars + cls_train + cls_state]
    model.set_stage(stage)
    model.train_step((tf.constant(x), tf.constant(y)))
    after = [v.numpy() for v in label_vars + cls_train + cls_state]
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    n_label, n_cls = len(label_vars), len(cls_train)
    label_changed = changed[:n_label]
    cls_changed = changed[n_label:n_label + n_cls]
    state_changed = changed[n_label + n_cls:]
    assert all(label_changed) == (stage != 1) and any(label_changed) == (stage != 1)
    assert all(cls_changed) == (stage != 2) and any(cls_changed) == (stage != 2)
    # BatchNorm statistics move only when the classifier trains.
    assert any(state_changed) == (stage != 2)


def test_stage_schedule_by_epoch():
    model = _tiny(_data()[1], classification_epochs=2, embedding_epochs=1)
    assert [model.stage_at(e) for e in range(5)] == [1, 1, 2, 3, 3]


@pytest.mark.parametrize("negatives", ["bank", "batch"])
def test_two_logical_devices_equal_one(negatives):
    from conftest import mirrored_strategy
    x, y = _data(16)
    # The in-batch variant takes neighbours from each replica's batch, so it
    # matches one device only when no neighbour crosses the split: J2 off.
    extra = {} if negatives == "bank" else {"lam": 0.0}
    results = []
    for n in (1, 2):
        with mirrored_strategy(n).scope():
            model = _tiny(y, negatives=negatives,
                          optimizer=keras.optimizers.SGD(0.1, momentum=0.9), **extra)
        model.set_stage(3)
        ds = mirrored_strategy(n).experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
        model.fit(ds, epochs=2, verbose=0)  # the second epoch reads the bank
        results.append([v.numpy() for v in model.weights])
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_way_and_in_batch_variants(tmp_path):
    x, y = _data(32)
    one_way = _tiny(y, two_way=False)
    logs = one_way.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert logs["j2"] == [0.0] and logs["j2_active"] == [0.0] and logs["j1"][0] > 0
    assert (one_way.bank.last_seen.numpy() == -1).all()  # the bank is not used
    in_batch = _tiny(y, negatives="batch")
    logs = in_batch.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert logs["j2"][0] > 0
    # Saved and loaded with its tables and bank.
    loaded = assert_round_trip(in_batch, tmp_path, x)
    assert loaded.negatives == "batch" and loaded.num_sets == in_batch.num_sets


def test_save_and_load_round_trip_keeps_tables_bank_and_optimizer(tmp_path):
    x, y = _data(32)
    model = _tiny(y)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert (model.bank.last_seen.numpy() >= 0).any()  # the bank holds rows to compare
    loaded = assert_round_trip(model, tmp_path, x)
    np.testing.assert_array_equal(loaded.bank.bank.numpy(), model.bank.bank.numpy())
    np.testing.assert_array_equal(loaded.neighbours.numpy(), model.neighbours.numpy())
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    np.testing.assert_allclose(np.asarray(loaded.embed_labels(y[:4])),
                               np.asarray(model.embed_labels(y[:4])), rtol=0, atol=0)


def test_bad_settings_are_refused():
    y = _data()[1]
    with pytest.raises(ValueError, match="negatives"):
        _tiny(y, negatives="images")
    with pytest.raises(ValueError, match=">= 0"):
        _tiny(y, alpha=-1.0)


def test_metric_to_bce_gradient_ratio_on_f_i_against_numpy():
    """||d(alpha J1)/d f_I|| / ||d BCE/d f_I||: the BCE's gradient by hand
    through the head, J1's by central differences of the numpy J1 (one-way,
    so no bank), logged in stage 3 and 0 before."""
    x, y = _data()
    x, y = x[:16], y[:16]
    model = _tiny(_data()[1], alpha=0.7, two_way=False)
    f_i, logits = (a.numpy().astype(np.float64) for a in model.classifier(
        x, return_features=True))
    f_y = model.embed_labels(y).numpy().astype(np.float64)
    ids, _ = model.set_ids(tf.constant(y))
    nb = model.neighbours.numpy()[ids.numpy()]
    f_yn = model.embed_labels(model.label_sets.numpy()[nb].reshape(-1, C)).numpy()
    f_yn = f_yn.reshape(16, 3, 5).astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    kernel = model.classifier.head.kernel.numpy().astype(np.float64)  # [5, C]
    g_bce = ((p - y) / y.size) @ kernel.T  # BCE averaged over the 16 x C entries
    h, g_metric = 1e-5, np.zeros_like(f_i)
    for index in np.ndindex(*f_i.shape):
        up, down = f_i.copy(), f_i.copy()
        up[index] += h
        down[index] -= h
        g_metric[index] = 0.7 * (_np_metric(up, f_y, f_yn)[0].mean()
                                 - _np_metric(down, f_y, f_yn)[0].mean()) / (2 * h)
    assert np.abs(g_metric).max() > 0  # some J1 term is active
    want = np.linalg.norm(g_metric) / np.linalg.norm(g_bce)
    model.set_stage(3)
    logs = model.train_step((tf.constant(x), tf.constant(y)))
    assert float(logs["metric_grad_ratio"]) == pytest.approx(want, rel=1e-3)
    for stage in (1, 2):
        model.set_stage(stage)
        model.reset_metrics()
        assert float(model.train_step((tf.constant(x), tf.constant(y)))["metric_grad_ratio"]) == 0
