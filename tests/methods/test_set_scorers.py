"""Dependency scorers for set-level decoding (mltf.methods.scoring): each
candidate's score equals the method's own model called on that one set,
batched over images and candidates, and saved on its own."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_classifier, tiny_features, tiny_wgan
from mltf import methods, retdm
from mltf.methods import scoring
from roundtrip import assert_round_trip

N, C, K = 7, 3, 4


def _candidates(seed=0):
    return np.random.default_rng(seed).integers(0, 2, (N, K, C)).astype(np.float32)


def _dataset(x, y, batch=3):  # 7 images in batches of 3: a ragged last batch
    return tf.data.Dataset.from_tensor_slices(({"features": x}, y)).batch(batch)


def test_bce_has_no_dependency_model():
    assert methods.get("bce").set_scorer(None, tiny_classifier(C)) is None


def test_critic_scorer_is_the_critic_on_each_candidate(tmp_path):
    x, y = tiny_features(N, C)
    gan = tiny_wgan(tiny_classifier(C), 1, lambda: keras.optimizers.Adam(1e-3))
    scorer = methods.get("wgan_gp").set_scorer(None, gan)
    cands = _candidates()
    z = gan.feature_extractor(x)
    want = [[float(gan.critic(cands[i, j][None], z[i][None])[0]) for j in range(K)]
            for i in range(N)]
    got = scoring.dependency_scores(scorer, _dataset(x, y), cands)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loaded = assert_round_trip(scorer, tmp_path, (x, cands))
    np.testing.assert_allclose(scoring.dependency_scores(loaded, _dataset(x, y), cands), got,
                               rtol=1e-6)


def test_unconditional_critic_scorer_ignores_the_image():
    x, y = tiny_features(N, C)
    critic = methods.wgan_gp.LabelCritic(C, projection_dim=4, hidden_dim=4, depth=1,
                                         conditional=False)
    gan = methods.wgan_gp.WGANGPClassifier(tiny_classifier(C), critic)
    gan.build((None, 6))
    scorer = methods.get("wgan_gp").set_scorer(None, gan)
    cands = np.broadcast_to(_candidates()[:1], (N, K, C)).copy()
    got = scoring.dependency_scores(scorer, _dataset(x, y), cands)
    np.testing.assert_allclose(got, np.broadcast_to(got[:1], got.shape), rtol=1e-6)
    np.testing.assert_allclose(got[0], np.asarray(critic(cands[0])), rtol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_embedding_scorer_is_minus_the_distance_of_f_i_and_f_y(tmp_path, normalize):
    x, y = tiny_features(N, C)
    clf = tiny_classifier(C)
    model = retdm.build_retdm(clf, y, k=2, label_units=6, normalize_embeddings=normalize)
    model.build((None, 6))
    scorer = methods.get("retdm").set_scorer(None, model)
    cands = _candidates(1)
    f_i = np.asarray(clf.backbone(x), np.float64)
    f_y = np.asarray(model.embed_labels(cands.reshape(-1, C)), np.float64).reshape(N, K, -1)
    if normalize:  # the distance of unit vectors, as RETDM trained it (0 stays 0)
        f_i, f_y = (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6)
                    for v in (f_i, f_y))
    want = -np.sqrt(((f_i[:, None, :] - f_y) ** 2).sum(-1))
    got = scoring.dependency_scores(scorer, _dataset(x, y, batch=4), cands)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert_round_trip(scorer, tmp_path, (x, cands))
