"""RETDM building blocks (seed 001 sec. III): the label-set kNN table, the
two-way distance-metric losses and the image-embedding memory bank.

(The RETDM model and its three-stage schedule build on these; see the
README's status.)

kNN table. y(Theta), the k label sets nearest to y, is computed once over the
*distinct* training label sets (Euclidean distance of multi-hot vectors, so
d^2 is the Hamming distance; y itself excluded), exactly and vectorised:
d^2 = |a|^2 + |b|^2 - 2 a.b in row chunks, so memory stays at
``chunk x D`` floats. Hamming distances are integers and ties are common;
they are broken by the neighbour's frequency in the training set (more
frequent first), then by its index, so the table is deterministic. With
fewer than k other sets, the table repeats the farthest one available
(documented padding). Cost, measured 2026-11-22 on 2 CPU cores: 12.2 s for
20,000 distinct sets of 80 labels (a COCO-like draw), k = 10; memory is one
1,024 x D block of floats at a time (peak RSS of the whole process, with
TensorFlow loaded: 1.1 GB).

Losses (eq. 4-8), with d the Euclidean distance and sim = -d:

  J1 = -log softmax(-d(f_I, f_y), -d(f_I, f_y1), ..., -d(f_I, f_yk))[0]
       if some d(f_I, f_yi) <= d(f_I, f_y), else 0       (image to labels)
  J2 = the same from f_y to f_I and the images I(Theta) whose label sets
       are y's neighbours                                   (label to images)
  J_metric = J1 + lambda J2,  lambda = 1

``metric_loss`` returns the per-example loss and whether it was active.

Memory bank. Running the CNN on k extra images per sample for J2 would
multiply the cost by k + 1. Instead a bank keeps, per distinct label set, a
running average of the image embeddings of the training images with that
set: after each batch, bank[s] <- m bank[s] + (1 - m) mean(f_I of the
batch's images with set s) (the first visit sets it directly). f_I(Theta)
for J2 are the bank rows of y's neighbour sets. Staleness: a row is as old
as the last batch that contained its set (``age``, in steps); rare sets go
stale, and their rows lag the current embedding network, which is what the
momentum trades against noise. Size: D x d floats, e.g. 20,000 sets x 512
x 4 bytes = 41 MB at MS-COCO scale.
"""

from typing import Tuple

import numpy as np
import tensorflow as tf


def distinct_label_sets(labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct sets [D, C] uint8, index of each example's set [N], counts [D])."""
    labels = (np.asarray(labels) > 0).astype(np.uint8)
    sets, inverse, counts = np.unique(labels, axis=0, return_inverse=True,
                                      return_counts=True)
    return sets, inverse.reshape(-1), counts


def knn_table(sets: np.ndarray, k: int, counts: np.ndarray = None,
              chunk: int = 1024) -> Tuple[np.ndarray, np.ndarray]:
    """The k nearest other label sets of every distinct set.

    Args:
      sets: distinct multi-hot label sets [D, C].
      k: neighbours (10 in the paper).
      counts: training frequency of each set, for tie-breaking (default 1).
      chunk: rows per block of the distance computation.

    Returns:
      (indices [D, k] int32, squared distances [D, k] int32). With D - 1 < k
      the last available neighbour is repeated.
    """
    sets = np.asarray(sets, np.float32)
    d = sets.shape[0]
    if d < 2:
        raise ValueError("the kNN table needs at least two distinct label sets")
    counts = np.ones(d) if counts is None else np.asarray(counts, np.float64)
    norms = (sets * sets).sum(axis=1)
    k_eff = min(k, d - 1)
    # Order key: distance first, then more frequent, then lower index. Distances
    # are integers <= C, so one float key sorts all three exactly.
    rank_of_count = np.empty(d, np.int64)
    rank_of_count[np.lexsort((np.arange(d), -counts))] = np.arange(d)
    tie = rank_of_count / float(d)  # in [0, 1)
    out_idx = np.empty((d, k_eff), np.int32)
    out_dist = np.empty((d, k_eff), np.int32)
    for start in range(0, d, chunk):
        block = sets[start:start + chunk]
        sq = norms[start:start + chunk, None] + norms[None, :] - 2.0 * block @ sets.T
        sq = np.rint(np.maximum(sq, 0.0))
        key = sq + tie[None, :]
        rows = np.arange(block.shape[0])
        key[rows, start + rows] = np.inf  # y itself is not its own neighbour
        part = np.argpartition(key, k_eff - 1, axis=1)[:, :k_eff]
        order = np.take_along_axis(key, part, axis=1).argsort(axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        out_idx[start:start + chunk] = idx
        out_dist[start:start + chunk] = np.take_along_axis(sq, idx, axis=1)
    if k_eff < k:
        pad = k - k_eff
        out_idx = np.concatenate([out_idx, np.repeat(out_idx[:, -1:], pad, 1)], 1)
        out_dist = np.concatenate([out_dist, np.repeat(out_dist[:, -1:], pad, 1)], 1)
    return out_idx, out_dist


def metric_loss(anchor, positive, negatives):
    """One way of the two-way metric (eq. 6 or 7).

    Args:
      anchor: [B, d] (f_I for J1, f_y for J2).
      positive: [B, d] (f_y for J1, f_I for J2).
      negatives: [B, k, d] (f_y(Theta) for J1, f_I(Theta) for J2).

    Returns:
      (loss [B], active [B] bool): -log softmax over -distances at the
      positive, kept only where some negative is at least as close as the
      positive (0 elsewhere).
    """
    d_neg = tf.sqrt(tf.reduce_sum(tf.square(anchor[:, None, :] - negatives), axis=-1) + 1e-12)
    d_pos = tf.sqrt(tf.reduce_sum(tf.square(anchor - positive), axis=-1) + 1e-12)
    scores = tf.concat([-d_pos[:, None], -d_neg], axis=1)
    nll = -tf.nn.log_softmax(scores, axis=1)[:, 0]
    active = tf.reduce_any(d_neg <= d_pos[:, None], axis=1)
    return tf.where(active, nll, tf.zeros_like(nll)), active


class MemoryBank:
    """Running averages of image embeddings per distinct label set.

    Args:
      num_sets: D, distinct training label sets.
      dim: embedding size d.
      momentum: m in bank <- m bank + (1 - m) batch mean.
    """

    def __init__(self, num_sets: int, dim: int, momentum: float = 0.9):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.bank = tf.Variable(tf.zeros([num_sets, dim]), trainable=False, name="bank")
        self.filled = tf.Variable(tf.zeros([num_sets], tf.bool), trainable=False, name="filled")
        self.age = tf.Variable(tf.zeros([num_sets], tf.int64), trainable=False, name="age")

    def update(self, set_ids, embeddings):
        """Folds a batch in: ``set_ids`` [B] (distinct-set index of each
        example), ``embeddings`` [B, d]."""
        set_ids = tf.cast(set_ids, tf.int32)
        n = tf.shape(self.bank)[0]
        sums = tf.math.unsorted_segment_sum(embeddings, set_ids, n)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(set_ids, tf.float32), set_ids, n)
        seen = counts > 0
        mean = sums / tf.maximum(counts, 1.0)[:, None]
        blended = tf.where(self.filled[:, None],
                           self.momentum * self.bank + (1.0 - self.momentum) * mean, mean)
        self.bank.assign(tf.where(seen[:, None], blended, self.bank))
        self.filled.assign(tf.logical_or(self.filled, seen))
        self.age.assign(tf.where(seen, tf.zeros_like(self.age), self.age + 1))

    def lookup(self, set_ids):
        """Bank rows [..., d] for distinct-set indices [...]."""
        return tf.gather(self.bank, tf.cast(set_ids, tf.int32))
