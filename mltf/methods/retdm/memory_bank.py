"""The image-embedding memory bank of RETDM's J2.

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

import keras
import tensorflow as tf

from mltf.core import steps


def _scatter_or_assign(var, value):
    if isinstance(value, tf.IndexedSlices):
        return var.scatter_update(value)
    return var.assign(value)


def _all_replicas(*tensors):
    """The tensors of every replica, concatenated in replica order."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        return ctx.all_gather(list(tensors), axis=0)
    return list(tensors)


@keras.saving.register_keras_serializable(package="mltf")
class MemoryBank(keras.layers.Layer):
    """Running averages of image embeddings, one row per distinct label set.

    After each step, for every set s in the (global) batch:
    ``bank[s] <- m bank[s] + (1 - m) mean(f_I of the batch's images with
    set s)``, or the mean itself on the set's first visit. Rows never
    visited are not used (``filled``). ``last_seen`` is the step of the last
    visit, so a row's age is ``step - last_seen``.

    Under a MirroredStrategy the batch's ids and embeddings are all-gathered
    first, so every replica applies the same update and the bank equals the
    single-device one. Only visited rows of the bank are written (a scatter),
    so its update costs O(batch x d), not O(num_sets x d); ``last_seen``
    (num_sets int32) is rewritten whole (see ``prepare``).

    Args:
      num_sets: D, distinct training label sets.
      dim: embedding size d.
      momentum: m in [0, 1).
    """

    def __init__(self, num_sets: int, dim: int, momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"bank momentum must be in [0, 1), got {momentum}")
        self.num_sets = int(num_sets)
        self.dim = int(dim)
        self.momentum = float(momentum)
        self.bank = self.add_weight(shape=(self.num_sets, self.dim), initializer="zeros",
                                    trainable=False, name="bank", dtype="float32")
        self.last_seen = self.add_weight(shape=(self.num_sets,),
                                         initializer=keras.initializers.Constant(-1),
                                         trainable=False, name="last_seen", dtype="int32")
        self.built = True

    def filled(self, set_ids):
        return tf.gather(self.last_seen.value, set_ids) >= 0

    def age(self, set_ids, step, last_seen=None):
        """Steps since each row's last refresh (meaningless where not filled);
        ``last_seen``: ``update``'s result instead of the variable."""
        last_seen = self.last_seen.value if last_seen is None else last_seen
        return tf.cast(step, tf.int32) - tf.gather(last_seen, set_ids)

    def lookup(self, set_ids):
        return tf.gather(self.bank.value, set_ids)

    def prepare(self, set_ids, valid, lookup_ids=None):
        """Everything a step reads from the bank, read before its update:
        ``last_seen`` once, whole, and the bank rows of ``lookup_ids`` (J2's
        neighbours) and of the (global) batch's sets in one gather. Pass the
        result to ``update``, which builds the new rows and the new
        ``last_seen`` from these reads, so data flow orders every read of the
        step before the writes.

        A control edge alone did not: under a MirroredStrategy (2 logical
        CPUs, TF 2.21) Grappler's dependency optimizer dropped the edge from
        a ``filled`` read of ``last_seen`` to its scatter as redundant (a
        path through the gradient all-reduce and the bank's all-gather that
        a later rewrite removed), and about one step in 20 the J2 mask saw
        that step's own update.

        Args:
          set_ids: [B] int32 set index of each example of this replica.
          valid: [B] bool, as in ``update``.
          lookup_ids: optional int32 ids of rows to read for the step.

        Returns:
          A dict: ``rows`` [*lookup_ids.shape, d] and ``filled`` (of
          ``lookup_ids``) and the update's inputs.
        """
        set_ids, valid = _all_replicas(set_ids, tf.cast(valid, tf.int32))
        keep = valid > 0
        sets, slot = tf.unique(tf.boolean_mask(set_ids, keep))
        last_seen = tf.convert_to_tensor(self.last_seen.value)
        if lookup_ids is None:
            lookup_ids = tf.zeros([0], tf.int32)
        flat = tf.reshape(lookup_ids, [-1])
        rows = tf.gather(self.bank.value, tf.concat([flat, sets], 0))
        n = tf.size(flat)
        return {"rows": tf.reshape(rows[:n], tf.concat([tf.shape(lookup_ids), [self.dim]], 0)),
                "filled": tf.gather(last_seen, lookup_ids) >= 0,
                "keep": keep, "sets": sets, "slot": slot, "old": rows[n:],
                "last_seen": last_seen}

    def update(self, set_ids, embeddings, valid, step, prepared=None):
        """Folds a batch in.

        Args:
          set_ids: [B] int32 distinct-set index of each example.
          embeddings: [B, d] image embeddings (no gradient flows).
          valid: [B] bool, False for examples whose set is not in the table.
          step: the training step (int), stored as ``last_seen``.
          prepared: ``prepare(set_ids, valid, ...)`` of this step (made here
            if None).

        Returns:
          The new ``last_seen`` [D], for reads in the same step after the
          update (``age``), which then need no ordering against the write.
        """
        if prepared is None:
            prepared = self.prepare(set_ids, valid)
        embeddings = tf.stop_gradient(tf.cast(embeddings, tf.float32))
        (embeddings,) = _all_replicas(embeddings)
        embeddings = tf.boolean_mask(embeddings, prepared["keep"])
        sets, slot, last_seen = prepared["sets"], prepared["slot"], prepared["last_seen"]
        n = tf.shape(sets)[0]
        sums = tf.math.unsorted_segment_sum(embeddings, slot, n)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(slot, tf.float32), slot, n)
        mean = sums / counts[:, None]
        blended = tf.where((tf.gather(last_seen, sets) >= 0)[:, None],
                           self.momentum * prepared["old"] + (1.0 - self.momentum) * mean,
                           mean)
        # The bank is scattered (its new rows depend on the read through
        # ``old``); last_seen (D int32) is rewritten whole from its read.
        new_last_seen = tf.tensor_scatter_nd_update(
            last_seen, sets[:, None], tf.fill([n], tf.cast(step, tf.int32)))
        steps.assign_replicated(
            [self.bank, self.last_seen], [tf.IndexedSlices(blended, sets), new_last_seen],
            update=_scatter_or_assign)
        return new_last_seen

    def get_config(self):
        config = super().get_config()
        config.update({"num_sets": self.num_sets, "dim": self.dim,
                       "momentum": self.momentum})
        return config
