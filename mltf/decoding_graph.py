"""Set-level decoding in TensorFlow ops, for the exported model
(``mltf.export --set_decoding``): ``mltf.decoding``'s decoding with the
label-set prior (``prior_scores``), the likelihood alone (BCE) or a method's
dependency scorer (``mltf.methods.scoring``: the WGAN-gp critic, RETDM's
embedding) in one graph, no numpy and no mltf at serving time.

Every step is the numpy module's, in float64 and in the same order of
operations, so the decoded sets are its sets bit for bit (tests/evaluation/
test_export_decoding.py): the thresholded set ``p >= t``; its 2^k flips of
the labels of smallest ``|logit q|`` (a stable sort: equal ones in label
order); the ``m`` training sets of highest likelihood (equal ones: the more
frequent, then the lower index, by the same 1e-12 key offsets; ``top_k``
keeps the lower index of equal keys); a repeat of an earlier slot is
invalid; the score ``loglik(q) + w * dep``, ``dep`` the prior
``log(1 + count)`` (the count looked up by the set's key, its labels as a
string of 0s and 1s, in a ``tf.lookup.StaticHashTable``) or the scorer's
``score(embed(x), candidates)`` on the model input ``x`` (float32, as
``scoring.dependency_scores``); the decoded set is the first valid slot of
highest score (ties: the earlier slot, as ``np.argmax``). RETDM's kNN
candidates (``scoring.nearest_sets``) come after the likeliest sets: f_y of
the training sets is computed once, at construction, and held as a constant.
"""

import numpy as np
import tensorflow as tf

from mltf import decoding


def _clip(x):
    return tf.clip_by_value(x, decoding.EPSILON, 1.0 - decoding.EPSILON)


def _logit(x):
    return tf.math.log(x) - tf.math.log1p(-x)


def _shift_logits(p, t):
    """``decoding.shift_logits``."""
    low, high = decoding.SHIFT_BOUNDS
    return (_logit(tf.clip_by_value(p, low, high))
            - _logit(tf.clip_by_value(t, low, high)))


def _shift(z):
    """``decoding.shift_to_thresholds`` of the shifted logits ``z``."""
    return 1.0 / (1.0 + tf.exp(-z))


def _set_keys(sets):
    """``[..., C]`` 0/1 integer sets as strings of 0s and 1s ``[...]``."""
    return tf.strings.reduce_join(tf.strings.as_string(sets), axis=-1)


class SetDecoder(tf.Module):
    """``call(p, x)``: the decoded sets (bool ``[B, C]``) of probabilities
    ``p`` (float32 ``[B, C]``) of model inputs ``x`` (used by ``scorer``
    only), as ``mltf.training.set_decoding`` decodes them with the label-set
    prior, a method's scorer, or (neither) by likelihood alone.

    Args:
      thresholds: ``[C]`` the classifier's thresholds.
      table: the training split's ``decoding.LabelSetTable``.
      w: the prior's weight.
      k: labels flipped in every combination.
      m: likeliest training sets added.
      shift: the likelihood of ``p`` shifted to the thresholds.
      prior: add ``w * log(1 + count)``; False: the scorer's, or (no
        scorer) a method without a dependency model (BCE), by likelihood
        alone.
      scorer: the method's ``SetScorer`` (``set_scorer.keras``), or None.
      knn: the ``knn`` training sets nearest the image in the scorer's
        embedding added last (it needs ``embed_sets``: RETDM); 0: none.
    """

    def __init__(self, thresholds, table, w, k, m, shift=True, prior=True, scorer=None,
                 knn=0):
        super().__init__(name="set_decoder")
        if prior and scorer is not None:
            raise ValueError("the decoder scores by the prior or by a scorer, not both")
        if knn and not hasattr(scorer, "embed_sets"):
            raise ValueError(f"knn = {knn} needs a scorer that embeds label sets "
                             f"(EmbeddingSetScorer), not {type(scorer).__name__}")
        self.prior = bool(prior)
        # Held without a trackable dependency: ExportArchive walks its tracked
        # objects' children for lookup tables, and the walk builds Keras's
        # default serving signature of every sub-model, which fails for the
        # critic (it takes labels and features). The scorer's variables reach
        # the SavedModel through the functions that capture them.
        object.__setattr__(self, "scorer", scorer)
        self.thresholds = tf.constant(np.asarray(thresholds, np.float64))
        c = int(self.thresholds.shape[0])
        self.k = min(int(k), c)
        self.m = min(int(m), len(table.sets)) if len(table.sets) else 0
        self.w = float(w) if prior or scorer is not None else 0.0
        self.shift = bool(shift)
        self.patterns = tf.constant(decoding.flip_patterns(self.k).astype(np.int32))
        sets = np.asarray(table.sets, np.uint8)
        self.sets = tf.constant(sets.astype(np.float64))
        self.tie = tf.constant(decoding.tie_offsets(table.counts))
        keys = ["".join(str(int(v)) for v in row) for row in sets]
        self.counts = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys or [""], tf.string),
            tf.constant(np.asarray(table.counts, np.int64) if keys else [0], tf.int64)),
            default_value=0)
        self.knn = min(int(knn), len(sets))
        if self.knn:
            f_y = np.asarray(scorer.embed_sets(tf.constant(sets, tf.float32)), np.float64)
            self.f_y = tf.constant(f_y)
            self.f_y_norm = tf.constant((f_y ** 2).sum(axis=1))

    def _flips(self, base, z):
        """The thresholded set and its 2^k flips: int32 ``[B, 2^k, C]``."""
        c = tf.shape(base)[1]
        uncertain = tf.argsort(tf.abs(z), axis=1, stable=True)[:, :self.k]
        hot = tf.one_hot(uncertain, c, dtype=tf.int32)  # [B, k, C]
        flips = tf.einsum("pk,bkc->bpc", self.patterns, hot)
        return tf.bitwise.bitwise_xor(base[:, None, :], flips)

    def _likeliest(self, source):
        """Indices ``[B, m]`` of the ``m`` likeliest training sets."""
        log_p, log_q = tf.math.log(_clip(source)), tf.math.log1p(-_clip(source))
        key = -(tf.reduce_sum(log_q, axis=1, keepdims=True)
                + tf.matmul(log_p - log_q, self.sets, transpose_b=True)) + self.tie[None, :]
        return tf.math.top_k(-key, self.m).indices

    def _nearest(self, embedding):
        """``scoring.nearest_sets``' indices ``[B, knn]``."""
        f_i = tf.cast(embedding, tf.float64)
        d2 = (tf.reduce_sum(f_i ** 2, axis=1, keepdims=True)
              - 2.0 * tf.matmul(f_i, self.f_y, transpose_b=True) + self.f_y_norm[None, :])
        return tf.argsort(d2, axis=1, stable=True)[:, :self.knn]

    def __call__(self, p, x=None):
        p = tf.cast(p, tf.float64)
        uses_scorer = self.scorer is not None and (self.w != 0 or self.knn)
        embedding = self.scorer.embed(x) if uses_scorer else None
        z = _shift_logits(p, self.thresholds[None, :])
        q = _shift(z)
        base = tf.cast(p >= self.thresholds[None, :], tf.int32)
        parts = [self._flips(base, z)]
        if self.m > 0:
            index = self._likeliest(q if self.shift else p)
            parts.append(tf.cast(tf.gather(self.sets, index), tf.int32))
        if self.knn:
            parts.append(tf.cast(tf.gather(self.sets, self._nearest(embedding)), tf.int32))
        sets = tf.concat(parts, axis=1)  # [B, K, C]
        n_slots = sets.shape[1]
        same = tf.reduce_all(sets[:, :, None, :] == sets[:, None, :, :], axis=-1)  # [B, K, K]
        earlier = tf.constant(np.tri(n_slots, k=-1, dtype=bool).T)  # [i, j]: i < j
        valid = ~tf.reduce_any(same & earlier[None], axis=1)
        source = _clip(q if self.shift else p)
        log_p, log_q = tf.math.log(source), tf.math.log1p(-source)
        y = tf.cast(sets, tf.float64)
        score = (tf.reduce_sum(y * log_p[:, None, :], axis=-1)
                 + tf.reduce_sum((1.0 - y) * log_q[:, None, :], axis=-1))
        if self.w != 0 and self.prior:
            count = self.counts.lookup(_set_keys(sets))
            score = score + self.w * tf.math.log1p(tf.cast(count, tf.float64))
        elif self.w != 0:
            dep = self.scorer.score(embedding, tf.cast(sets, tf.float32))
            score = score + self.w * tf.cast(dep, tf.float64)
        score = tf.where(valid, score, -np.inf)
        best = tf.reduce_max(score, axis=1, keepdims=True)
        slots = tf.range(n_slots)[None, :]
        first = tf.reduce_min(tf.where(score == best, slots, n_slots), axis=1)
        return tf.gather(sets, first, batch_dims=1) > 0
