"""The two-way distance-metric losses of RETDM (seed 001 sec. III).

Losses (eq. 4-8), with d the Euclidean distance and sim = -d:

  J1 = -log softmax(-d(f_I, f_y), -d(f_I, f_y1), ..., -d(f_I, f_yk))[0]
       if some d(f_I, f_yi) <= d(f_I, f_y), else 0       (image to labels)
  J2 = the same from f_y to f_I and the images I(Theta) whose label sets
       are y's neighbours                                   (label to images)
  J_metric = J1 + lambda J2,  lambda = 1

``metric_loss`` returns the per-example loss and whether it was active.
"""

import tensorflow as tf


def _metric_from_distances(d_pos, d_neg, mask=None):
    """-log softmax(-d_pos, -d_neg...)[0] where some allowed negative is at
    least as close as the positive, else 0. ``d_pos`` [B], ``d_neg`` [B, K],
    ``mask`` [B, K] (False: not a negative of that row)."""
    if mask is None:
        mask = tf.ones_like(d_neg, tf.bool)
    # A finite stand-in for -inf keeps log_softmax and its gradient finite.
    neg_scores = tf.where(mask, -d_neg, tf.fill(tf.shape(d_neg), tf.constant(-1e9, d_neg.dtype)))
    scores = tf.concat([-d_pos[:, None], neg_scores], axis=1)
    nll = -tf.nn.log_softmax(scores, axis=1)[:, 0]
    active = tf.reduce_any(tf.logical_and(mask, d_neg <= d_pos[:, None]), axis=1)
    return tf.where(active, nll, tf.zeros_like(nll)), active


def _distance(a, b):
    # The epsilon keeps the gradient of sqrt finite at d = 0.
    return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=-1) + 1e-12)


def metric_loss(anchor, positive, negatives, mask=None):
    """One way of the two-way metric (eq. 6 or 7).

    Args:
      anchor: [B, d] (f_I for J1, f_y for J2).
      positive: [B, d] (f_y for J1, f_I for J2).
      negatives: [B, k, d] (f_y(Theta) for J1, f_I(Theta) for J2).
      mask: optional [B, k] bool, False for negatives to leave out (memory
        bank rows not filled yet).

    Returns:
      (loss [B], active [B] bool): -log softmax over -distances at the
      positive, kept only where some negative is at least as close as the
      positive (0 elsewhere).
    """
    d_neg = _distance(anchor[:, None, :], negatives)
    d_pos = _distance(anchor, positive)
    return _metric_from_distances(d_pos, d_neg, mask)


def metric_loss_in_batch(anchor, positive, candidates, mask):
    """``metric_loss`` with the negatives taken from a shared pool: row b's
    negatives are the ``candidates`` [M, d] where ``mask`` [B, M] is True
    (J2 with in-batch neighbours: the batch's images whose label set is one
    of y's k nearest sets)."""
    sq = (tf.reduce_sum(tf.square(anchor), -1)[:, None]
          + tf.reduce_sum(tf.square(candidates), -1)[None, :]
          - 2.0 * tf.matmul(anchor, candidates, transpose_b=True))
    d_neg = tf.sqrt(tf.maximum(sq, 0.0) + 1e-12)
    return _metric_from_distances(_distance(anchor, positive), d_neg, mask)
