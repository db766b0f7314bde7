"""RETDM's kNN candidates for set-level decoding
(``mltf.set_decoding_options.knn``): with hand-made embeddings, f_I(x) = x
and f_y(Y) = Y A, the training sets nearest each image by hand are added
after the likeliest ones, nearest first; refused where there is no label
embedding."""

import math

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mltf import decoding, methods
from mltf.methods import scoring
from mltf.training import set_decoding

# f_y of the 5 training sets: the rows of SETS @ A.
A = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], np.float32)
SETS = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], np.uint8)
COUNTS = np.array([4, 3, 2, 1, 1])
# {cat} (1, 0), {dog} (0, 1) and {cat, dog} (1, 1) are equally far from (0.5, 0.5):
# the lower index first.
IMAGES = np.array([[0.9, 0.1], [0.5, 0.5], [2.1, 3.0], [1.0, 1.2]], np.float32)


def _dense(kernel):
    layer = keras.layers.Dense(kernel.shape[1], use_bias=False)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    return layer


def _scorer():
    image_embedder = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    return scoring.EmbeddingSetScorer(image_embedder, _dense(A), _dense(np.eye(2, dtype="f")))


def _dataset(batch=3):  # a ragged last batch
    return tf.data.Dataset.from_tensor_slices((IMAGES, np.zeros((4, 3)))).batch(batch)


def _by_hand(knn):
    points = (SETS @ A).tolist()
    out = []
    for x in IMAGES.tolist():
        d = [math.dist(x, f) for f in points]
        out.append(sorted(range(len(points)), key=lambda j: (d[j], j))[:knn])
    return out


def test_nearest_sets_by_hand():
    got = scoring.nearest_sets(_scorer(), _dataset(), SETS, 3)
    assert got.tolist() == _by_hand(3)
    assert got[1].tolist() == [0, 1, 2]  # the three-way tie
    assert got[2, 0] == 4 and got[0, 0] == 0
    assert scoring.nearest_sets(_scorer(), _dataset(), SETS, 9).shape == (4, 5)  # capped at D


def test_knn_candidates_are_added_after_the_likeliest():
    p = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.1], [0.4, 0.6, 0.55], [0.7, 0.8, 0.1]],
                 np.float32)
    table = decoding.LabelSetTable(SETS, COUNTS)
    settings = {"k": 1, "m": 1, "shift": True, "scorer": "method", "knn": 2}
    nearest = set_decoding._nearest(_scorer(), _dataset(), table, settings)
    cands = decoding.candidate_sets(p, 0.5, table, 1, 1, True, nearest)
    plain = decoding.candidate_sets(p, 0.5, table, 1, 1, True)
    assert cands.sets.shape[1] == plain.sets.shape[1] + 2
    np.testing.assert_array_equal(cands.sets[:, :plain.sets.shape[1]], plain.sets)
    for i, rows in enumerate(_by_hand(2)):
        assert cands.sets[i, -2:].tolist() == SETS[rows].tolist()
        # A kNN set that the flips or the likeliest set already hold is a repeat.
        earlier = [s.tolist() for s in cands.sets[i, :-2]]
        for slot, row in zip((-2, -1), rows):
            assert cands.valid[i, slot] == (SETS[row].tolist() not in earlier)
    assert settings.get("knn") and set_decoding._nearest(
        _scorer(), _dataset(), table, dict(settings, knn=0)) is None
    with pytest.raises(ValueError, match="embeds label sets"):
        set_decoding._nearest(None, _dataset(), table, settings)


@pytest.mark.parametrize("method,scorer,ok", [("retdm", "method", True),
                                              ("retdm", "prior", False),
                                              ("bce", "method", False),
                                              ("wgan_gp", "method", False)])
def test_knn_needs_a_label_embedding(method, scorer, ok):
    gin.clear_config()
    try:
        gin.bind_parameter("mltf.set_decoding_options.knn", 4)
        gin.bind_parameter("mltf.set_decoding_options.scorer", scorer)
        if ok:
            set_decoding.check_options(methods.get(method))
        else:
            with pytest.raises(methods.SettingsError, match="knn = 4 needs"):
                set_decoding.check_options(methods.get(method))
        gin.bind_parameter("mltf.set_decoding_options.knn", 0)
        set_decoding.check_options(methods.get(method))  # the default: today's decoding
    finally:
        gin.clear_config()
