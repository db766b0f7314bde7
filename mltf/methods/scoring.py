"""Dependency scorers: dep(Y, x) of candidate label sets for set-level
decoding (``mltf.decoding``), one per method that models label dependency
(``Method.set_scorer``; None for a method without one, such as BCE).

A scorer is a Keras model, saved on its own in the run folder
(``set_scorer.keras``), so ``mltf.evaluate`` can decode without the training
model. ``embed(x)`` runs the image side once per image batch (fext for the
WGAN-gp critic, f_I for RETDM); ``score(z, candidates)`` scores ``[B, K, C]``
candidate sets against those ``[B, ...]`` embeddings as one batch of B * K
rows.
"""

import keras
import numpy as np
import tensorflow as tf

from mltf.methods.base import SubmodelConfig
from pipelines.input import model_input


class SetScorer(SubmodelConfig, keras.Model):
    """Base of the dependency scorers: ``call((x, candidates))`` is
    ``score(embed(x), candidates)``; sub-models named in ``submodel_keys``
    are (de)serialised in the config (``SubmodelConfig``).

    Args:
      **kwargs: ``keras.Model`` arguments (``name``).
    """

    def build(self, input_shape):
        """Runs both sides once on zeros, so sub-models that build on their
        first call (the critic) exist before a loaded file's weights arrive."""
        x_shape, candidates_shape = input_shape
        x = keras.ops.zeros((1,) + tuple(x_shape[1:]))
        self.score(self.embed(x), keras.ops.zeros((1, 1, candidates_shape[-1])))
        self.built = True

    def embed(self, x):
        raise NotImplementedError

    def score(self, embedding, candidates):
        raise NotImplementedError

    def call(self, inputs):
        x, candidates = inputs
        return self.score(self.embed(x), candidates)


def _flat(candidates):
    """``[B, K, C]`` candidates as ``[B * K, C]`` float32, and (B, K)."""
    candidates = tf.cast(candidates, tf.float32)
    shape = tf.shape(candidates)
    return tf.reshape(candidates, [-1, shape[2]]), shape[0], shape[1]


def _repeat(embedding, k):
    """Each row of ``[B, d]`` repeated ``k`` times: ``[B * K, d]``, row-aligned
    with ``_flat``."""
    return tf.repeat(embedding, k, axis=0)


@keras.saving.register_keras_serializable(package="mltf")
class CriticSetScorer(SetScorer):
    """WGAN-gp: dep(Y, x) = D(Y, fext(x)), the trained critic's score.

    Args:
      critic: the trained ``LabelCritic``.
      feature_extractor: its fext; None for an unconditional critic D(Y).
      **kwargs: ``keras.Model`` arguments.
    """

    submodel_keys = ("critic", "feature_extractor")

    def __init__(self, critic, feature_extractor=None, **kwargs):
        super().__init__(**kwargs)
        self.critic = critic
        self.feature_extractor = feature_extractor

    def embed(self, x):
        if self.feature_extractor is None:
            return tf.zeros([tf.shape(x)[0], 0])
        return tf.cast(self.feature_extractor(x, training=False), tf.float32)

    def score(self, embedding, candidates):
        flat, b, k = _flat(candidates)
        features = _repeat(embedding, k) if self.feature_extractor is not None else None
        return tf.reshape(tf.cast(self.critic(flat, features), tf.float32), [b, k])


@keras.saving.register_keras_serializable(package="mltf")
class EmbeddingSetScorer(SetScorer):
    """RETDM: dep(Y, x) = -d(f_I(x), f_y(Y)), minus the Euclidean distance of
    the image and label embeddings (seed 001's similarity).

    Args:
      image_embedder: f_I, the classifier's backbone.
      label_hidden, label_embedding: Phi_dnn's two Dense layers (f_y).
      normalize: the distance of f_I and f_y divided by their L2 norms, as
        RETDM trained with ``normalize_embeddings``.
      **kwargs: ``keras.Model`` arguments.
    """

    submodel_keys = ("image_embedder", "label_hidden", "label_embedding")

    def __init__(self, image_embedder, label_hidden, label_embedding, normalize=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_embedder = image_embedder
        self.label_hidden = label_hidden
        self.label_embedding = label_embedding
        self.normalize = bool(normalize)

    def embed(self, x):
        f_i = tf.cast(self.image_embedder(x, training=False), tf.float32)
        return tf.math.l2_normalize(f_i, axis=-1) if self.normalize else f_i

    def embed_sets(self, sets):
        """f_y of label sets ``[D, C]`` (unit vectors with ``normalize``):
        ``[D, d]`` float32."""
        flat = tf.cast(sets, tf.float32)
        f_y = tf.cast(self.label_embedding(self.label_hidden(flat)), tf.float32)
        return tf.math.l2_normalize(f_y, axis=-1) if self.normalize else f_y

    def score(self, embedding, candidates):
        flat, b, k = _flat(candidates)
        diff = _repeat(embedding, k) - self.embed_sets(flat)
        return -tf.reshape(tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1)), [b, k])

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize}


def nearest_sets(scorer: SetScorer, dataset, sets, knn: int) -> np.ndarray:
    """Indices ``[N, min(knn, D)]`` into ``sets`` ``[D, C]`` (the distinct
    training sets) of each image's nearest sets under d(f_I(x), f_y(Y)),
    nearest first (equal distances: the lower index), over one pass of an
    ``(x, y)`` dataset; the scorer must embed label sets (``embed_sets``).
    Squared distances in float64, ``|f_I|^2 - 2 f_I . f_y + |f_y|^2``, so the
    memory is ``[B, D]`` per batch and not ``[B, D, d]``."""
    f_y = np.asarray(scorer.embed_sets(tf.constant(sets, tf.float32)), np.float64)
    run = tf.function(scorer.embed, reduce_retracing=True)
    knn = min(int(knn), len(f_y))
    out = []
    for x, _ in dataset:
        f_i = np.asarray(run(model_input(x)), np.float64)
        d2 = ((f_i ** 2).sum(axis=1, keepdims=True) - 2.0 * f_i @ f_y.T
              + (f_y ** 2).sum(axis=1)[None, :])
        out.append(np.argsort(d2, axis=1, kind="stable")[:, :knn])
    return np.concatenate(out)


def dependency_scores(scorer: SetScorer, dataset, candidates) -> np.ndarray:
    """dep ``[N, K]`` of ``candidates`` ``[N, K, C]`` over one pass of an
    ``(x, y)`` dataset in the order its scores were predicted (the rows of
    ``candidates``): one ``embed`` per image batch, one ``score`` over its
    B * K candidates."""
    run = tf.function(lambda x, sets: scorer.score(scorer.embed(x), sets),
                      reduce_retracing=True)
    out, start = [], 0
    for x, _ in dataset:
        x = model_input(x)
        b = int(tf.shape(x)[0])
        sets = tf.constant(candidates[start:start + b], tf.float32)
        if not scorer.built:
            scorer((x, sets))  # records the shapes a saved file is rebuilt from
        out.append(np.asarray(run(x, sets)))
        start += b
    if start != len(candidates):
        raise ValueError(f"the dataset has {start} examples, the candidates {len(candidates)}")
    return np.concatenate(out)
