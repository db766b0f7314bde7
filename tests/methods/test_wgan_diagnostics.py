"""The WGAN-gp critic's diagnostics (issue 14): margins, AUCs and the
softness baseline on hand cases, the epoch callback, and a run's log."""

import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_bindings, tiny_classifier, tiny_features, tiny_wgan, train_in_process
from mltf.methods import wgan_gp
from mltf.methods.wgan_gp import diagnostics

C = 4


def test_a_critic_given_the_answer_scores_auc_one():
    real, others = np.ones(6), np.zeros(6)
    soft = np.full((6, C), 0.3)
    out = diagnostics.critic_diagnostics(real, others, others, soft)
    assert out == {"critic_margin_generated": 1.0, "critic_margin_mismatched": 1.0,
                   "critic_auc_generated": 1.0, "critic_auc_mismatched": 1.0,
                   "softness_auc": 1.0}
    # Reversed: every real pair scored below every other.
    assert diagnostics.separation_auc(others, real) == 0.0


def test_a_random_critic_scores_auc_near_one_half():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 4000))
    out = diagnostics.critic_diagnostics(*scores, rng.random((4000, C)))
    assert out["critic_auc_generated"] == pytest.approx(0.5, abs=0.02)
    assert out["critic_auc_mismatched"] == pytest.approx(0.5, abs=0.02)
    assert out["critic_margin_generated"] == pytest.approx(
        np.mean(scores[0] - scores[1]), rel=1e-12)


def test_auc_counts_ties_half_by_hand():
    # Pairs (real, other): (1, 2) lost, (1, 0) won, (2, 2) tie, (2, 0) won.
    assert diagnostics.separation_auc([1.0, 2.0], [2.0, 0.0]) == pytest.approx(2.5 / 4)


def test_softness_by_hand_and_its_auc():
    np.testing.assert_allclose(diagnostics.softness([[0.2, 0.9, 0.5], [0, 1, 1]]), [0.8, 0.0])
    binary = np.array([[0, 1, 1, 0], [1, 0, 0, 0]], np.float32)
    soft = np.array([[0.1, 0.8, 0.9, 0.0], [0.6, 0.0, 0.0, 0.0]], np.float32)
    zeros = np.zeros(2)
    assert diagnostics.critic_diagnostics(zeros, zeros, zeros, soft)["softness_auc"] == 1.0
    # Hard (straight-through) samples are as binary as real sets: no signal.
    assert diagnostics.critic_diagnostics(zeros, zeros, zeros, binary)["softness_auc"] == 0.5


class SoftnessCritic(keras.layers.Layer):
    """A critic that has learned softness only: D(y, x) = -softness(y)."""

    conditional = True

    def call(self, labels, features=None):
        return -tf.reduce_sum(tf.minimum(labels, 1.0 - labels), axis=-1)


def _dataset(n=40, seed=0):
    x, y = tiny_features(n, C, seed)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_the_callback_shows_a_critic_that_learned_softness_only():
    x, y, ds = _dataset()
    generator = tiny_classifier(C)
    model = wgan_gp.WGANGPClassifier(generator, SoftnessCritic(),
                                     wgan_gp.frozen_copy(generator.backbone), n_critic=1)
    model.build((None, 6))
    callback = diagnostics.CriticDiagnostics(ds, y, max_images=24)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert set(logs) == {"val_" + k for k in diagnostics.KEYS}
    # Relaxed samples are soft, so softness alone separates them...
    assert logs["val_critic_auc_generated"] == logs["val_softness_auc"] == 1.0
    # ...while binary mismatched sets tie with the real ones.
    assert logs["val_critic_auc_mismatched"] == 0.5
    assert logs["val_critic_margin_mismatched"] == 0.0
    assert callback.evaluate(0) == callback.last  # seeded by the epoch


def test_the_callback_reads_at_most_max_images_and_matches_a_hand_evaluation():
    x, y, ds = _dataset()
    model = tiny_wgan(tiny_classifier(C), 1, lambda: keras.optimizers.Adam(1e-3))
    callback = diagnostics.CriticDiagnostics(ds, y, max_images=24)
    callback.set_model(model)
    out = callback.evaluate(3)
    # The first 24 images, G's sample with the callback's seed, the critic on fext.
    xs, ys = tf.constant(x[:24]), tf.constant(y[:24])
    seed = tf.constant([model.seed, 1000003 + 3], tf.int32)
    fake = model._sample(model.generator(xs, return_logits=True), seed, model._temperature())
    z = model.feature_extractor(xs)
    d_real, d_fake = (model.critic(s, z).numpy().ravel() for s in (ys, fake))
    assert out["critic_margin_generated"] == pytest.approx(np.mean(d_real - d_fake), rel=1e-5)
    assert out["critic_auc_generated"] == pytest.approx(
        np.mean((d_real[:, None] > d_fake[None]) + 0.5 * (d_real[:, None] == d_fake[None])))
    soft = np.minimum(fake.numpy(), 1 - fake.numpy()).sum(-1)
    assert out["softness_auc"] == pytest.approx(np.mean(soft > 0) + 0.5 * np.mean(soft == 0))


def test_a_wgan_run_logs_the_diagnostics_each_epoch(demo_dir, tmp_path):
    bindings = tiny_bindings(demo_dir, **{"mltf.train.initial_model": None,
                                          "mltf.train.pretrain_epochs": 1,
                                          "mltf.train.diagnostic_images": 16,
                                          "mltf.train.epochs": 1, "mltf.train.xla": False,
                                          "mltf.train.steps_per_epoch": 2})
    train_in_process("demo_wgangp.gin", tmp_path, bindings)
    with open(os.path.join(tmp_path, "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    values = {key: float(rows[0]["val_" + key]) for key in diagnostics.KEYS}
    assert all(np.isfinite(list(values.values())))
    assert all(0.0 <= values[key] <= 1.0 for key in diagnostics.KEYS if "auc" in key)
