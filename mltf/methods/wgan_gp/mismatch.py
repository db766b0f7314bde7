"""Draws the label set of another training image: the mismatched pairs of
the conditional WGAN-gp critic (seed 000, Fig. 1(b)).

For an image with label set y, ``MismatchSampler`` returns the label set y'
of a training image drawn uniformly among those whose label set differs from
y. So y' is never y when any other label set exists, and label sets are drawn
in proportion to their frequency, as if another training image were picked.
When every training image has the same set, y itself is returned (there is
nothing else to return).

How: the training label sets (``<split>.labels.npy``, written beside the
records) are grouped by distinct set and the images are ordered by set, so
set s owns the contiguous range [start_s, start_s + count_s). A draw r is
uniform in [0, N - count_y) and skips y's range (r += count_y when
r >= start_y). One hash lookup and one gather per example: O(1), no
rejection loop, and no image bytes read. A set not seen in training (e.g. on
validation data) has count 0 and draws over all N images.
"""

import numpy as np
import tensorflow as tf

from mltf.data import label_sets, schema


def set_keys(multi_hot):
    """String key of each label set, e.g. [0, 1, 1] -> "011"; [..., C] -> [...]."""
    bits = tf.strings.as_string(tf.cast(tf.round(multi_hot), tf.int32))
    return tf.strings.reduce_join(bits, axis=-1)


class MismatchSampler:
    """Draws label sets of other training images.

    Args:
      labels: multi-hot training labels, [N, C] (0/1).
    """

    def __init__(self, labels: np.ndarray):
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[0] == 0:
            raise ValueError(f"labels must be [N, C] with N > 0, got {labels.shape}")
        self.labels = (labels > 0).astype(np.uint8)
        distinct, _, counts = label_sets.distinct_label_sets(self.labels)
        self.num_examples = int(labels.shape[0])
        self.num_sets = int(distinct.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # Image r (in set order) has set set_of_rank[r].
        set_of_rank = np.repeat(np.arange(self.num_sets), counts)
        keys = ["".join(str(int(b)) for b in row) for row in distinct]
        self._sets = tf.constant(distinct.astype(np.float32))
        self._starts = tf.constant(starts.astype(np.int64))
        self._counts = tf.constant(counts.astype(np.int64))
        self._set_of_rank = tf.constant(set_of_rank.astype(np.int64))
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys), tf.range(self.num_sets, dtype=tf.int64)),
            default_value=-1)

    @classmethod
    def from_dataset(cls, data_dir: str, split: str = "train") -> "MismatchSampler":
        """Reads ``<split>.labels.npy`` of an mltf dataset."""
        return cls(schema.read_labels(data_dir, split))

    def sample(self, labels, seed):
        """Mismatched label sets for a batch.

        Args:
          labels: float multi-hot [B, C].
          seed: int tensor [2] (stateless randomness).

        Returns:
          float32 [B, C].
        """
        ids = self._table.lookup(set_keys(labels))
        known = ids >= 0
        safe = tf.maximum(ids, 0)
        own_count = tf.where(known, tf.gather(self._counts, safe), 0)
        own_start = tf.where(known, tf.gather(self._starts, safe), 0)
        pool = self.num_examples - own_count
        # Only when all images share one set: nothing else exists.
        everyone_same = pool <= 0
        pool = tf.where(everyone_same, tf.cast(self.num_examples, tf.int64), pool)
        u = tf.random.stateless_uniform(tf.shape(ids), seed, dtype=tf.float64)
        r = tf.minimum(tf.cast(tf.floor(u * tf.cast(pool, tf.float64)), tf.int64),
                       pool - 1)
        r = tf.where(tf.logical_and(~everyone_same, r >= own_start), r + own_count, r)
        return tf.gather(self._sets, tf.gather(self._set_of_rank, r))

    def own_set_count(self, labels) -> tf.Tensor:
        """How many training images have each given label set (0 if none)."""
        ids = self._table.lookup(set_keys(labels))
        return tf.where(ids >= 0, tf.gather(self._counts, tf.maximum(ids, 0)), 0)


class MismatchedLabels:
    """The batch transform (``pipelines.InputConfig.batch_transforms``) that
    adds ``mismatched_labels``, drawn by a ``MismatchSampler`` over the label
    sets of ``split`` of the dataset being read.

    Args:
      split: the split whose label sets are drawn from (the training split).
      labels: the label sets to draw from, multi-hot ``[N, C]`` (the run's
        training examples, without the selection split); None reads all of
        ``split``'s.
    """

    key = "mismatched_labels"

    def __init__(self, split: str = "train", labels=None):
        self.split = split
        self.labels = labels

    def __call__(self, config):
        # Made once per input pipeline, so its lookup table lives with it.
        sampler = (MismatchSampler.from_dataset(config.data_dir, self.split)
                   if self.labels is None else MismatchSampler(self.labels))

        def add(x, labels, seed):
            return {**x, self.key: sampler.sample(labels, seed)}

        return add
