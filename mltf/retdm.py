"""RETDM building blocks (seed 001 sec. III): the label-set kNN table, the
two-way distance-metric losses and the image-embedding memory bank.

The model, ``RETDMClassifier``, its three-stage ``StageSchedule`` and the
gin factory ``mltf.build_retdm`` (``mltf.train.method = "retdm"``) follow.

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

import time
from typing import Optional, Tuple

import gin
import keras
import numpy as np
import tensorflow as tf

from mltf import models
from mltf.core import steps
from mltf.data.label_sets import distinct_label_sets  # noqa: F401  (re-exported)
from pipelines.input import model_input


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


@keras.saving.register_keras_serializable(package="mltf")
class RETDMClassifier(steps.PrebuiltFit, models.OneOptimizerCompileConfig, keras.Model):
    """RETDM (seed 001): a classifier trained with a two-way distance metric
    between image and label embeddings and a label reconstruction.

    f_I is the classifier's backbone output (Phi_cnn: ``build_backbone(...,
    embedding_dim=512)``), f_y = Phi_dnn(y) (two Dense layers), the
    classification module is the classifier's head (BCE), the reconstruction
    module one Dense layer from f_y back to y (MSE). The loss is
    ``L = L_cls + alpha (J1 + lam J2) + beta L_rec`` (eq. 13), by stage:

    1. ``classification_epochs``: L_cls only (alpha = beta = 0), classifier
       trained;
    2. ``embedding_epochs``: alpha J_metric + beta L_rec, only Phi_dnn and
       the reconstruction trained; the classifier runs in inference mode
       (BatchNorm statistics and dropout fixed);
    3. the remaining epochs: L, everything trained.

    ``StageSchedule`` switches stages by epoch (so a resumed run picks the
    right one). Every term, the fraction of examples where J1 and J2 are
    active, and the memory bank's age are logged in every stage.

    J2's image neighbours I(Theta) come from a ``MemoryBank`` of image
    embeddings per label set (``negatives="bank"``; a row is as fresh as the
    last batch holding that set) or from the batch itself
    (``negatives="batch"``: the images of the replica's batch whose set is one
    of y's neighbours; none there means J2 is inactive for that example).

    ``call`` is the classifier's, and the classifier alone is the model to
    save for inference (``mltf.train`` writes it as ``model.keras``).

    Args:
      classifier: a ``MultiLabelClassifier``.
      num_sets: distinct training label sets D.
      k: neighbours per set (10 in the paper).
      alpha, beta: weights of J_metric and L_rec.
      lam: lambda, the weight of J2 (1 in the paper).
      two_way: False: J_metric = J1 (the one-way variant of Table V).
      negatives: ``"bank"`` or ``"batch"`` (J2's image neighbours).
      bank_momentum: the memory bank's momentum.
      label_units: units of Phi_dnn's first Dense layer (its second has the
        size of f_I, as J1 and J2 compare the two).
      embedding_activation: activation of Phi_dnn's output (ReLU, like f_I
        after VGG's fc layer).
      classification_epochs, embedding_epochs: lengths of stages 1 and 2.
      label_sets: the distinct training sets [D, C] (multi-hot); stored as a
        weight (omit when loading: the weights carry it).
      neighbours: their kNN table [D, k] (``knn_table``), stored likewise.
      **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, classifier, num_sets: int, k: int = 10, alpha: float = 1.0,
                 beta: float = 1.0, lam: float = 1.0, two_way: bool = True,
                 negatives: str = "bank", bank_momentum: float = 0.9,
                 label_units: int = 512, embedding_activation: Optional[str] = "relu",
                 classification_epochs: int = 0, embedding_epochs: int = 0,
                 label_sets=None, neighbours=None, **kwargs):
        super().__init__(**kwargs)
        if negatives not in ("bank", "batch"):
            raise ValueError(f"negatives must be 'bank' or 'batch', got {negatives!r}")
        if min(alpha, beta, lam) < 0:
            raise ValueError("alpha, beta and lam must be >= 0")
        if min(classification_epochs, embedding_epochs) < 0:
            raise ValueError("stage lengths must be >= 0")
        self.classifier = classifier
        self.num_labels = classifier.num_labels
        self.num_sets = int(num_sets)
        self.k = int(k)
        self.alpha, self.beta, self.lam = float(alpha), float(beta), float(lam)
        self.two_way = bool(two_way)
        self.negatives = negatives
        self.bank_momentum = float(bank_momentum)
        self.label_units = int(label_units)
        self.embedding_activation = embedding_activation
        self.classification_epochs = int(classification_epochs)
        self.embedding_epochs = int(embedding_epochs)
        self._initial_tables = (label_sets, neighbours)
        # float32: distances and the softmax stay exact under mixed precision.
        self.label_hidden = keras.layers.Dense(self.label_units, activation="relu",
                                               dtype="float32", name="label_hidden")
        self.label_embedding = None  # sized to f_I in build
        self.reconstruction = keras.layers.Dense(self.num_labels, dtype="float32",
                                                 name="reconstruction")
        self.mse = keras.losses.MeanSquaredError(name="reconstruction")
        names = ["loss", "bce", "j1", "j2", "reconstruction", "j1_active", "j2_active",
                 "bank_age", "bank_filled"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.stage = 3
        self.xla = False
        self._step_fns = {}

    # --- structure ------------------------------------------------------------

    def build(self, input_shape):
        if not self.classifier.built:
            self.classifier.build(input_shape)
        dim = int(self.classifier.backbone.compute_output_shape(input_shape)[-1])
        self.embedding_dim = dim
        self.label_embedding = keras.layers.Dense(
            dim, activation=self.embedding_activation, dtype="float32",
            name="label_embedding")
        self.label_hidden.build((None, self.num_labels))
        self.label_embedding.build((None, self.label_units))
        self.reconstruction.build((None, dim))
        self.bank = MemoryBank(self.num_sets, dim, self.bank_momentum, name="memory_bank")
        self.label_sets = self.add_weight(shape=(self.num_sets, self.num_labels),
                                          initializer="zeros", trainable=False,
                                          name="label_sets", dtype="float32")
        self.neighbours = self.add_weight(shape=(self.num_sets, self.k), initializer="zeros",
                                          trainable=False, name="neighbours", dtype="int32")
        sets, neighbours = self._initial_tables
        if sets is not None:
            self.label_sets.assign(np.asarray(sets, np.float32))
        if neighbours is not None:
            self.neighbours.assign(np.asarray(neighbours, np.int32))
        self._initial_tables = (None, None)
        self.built = True

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)

    def embed_labels(self, labels):
        """f_y = Phi_dnn(y) for multi-hot ``labels`` [..., C]."""
        return self.label_embedding(self.label_hidden(labels))

    def _label_variables(self):
        return (self.label_hidden.trainable_variables
                + self.label_embedding.trainable_variables
                + self.reconstruction.trainable_variables)

    def stage_variables(self, stage: int):
        """The variables stage ``stage`` trains."""
        if stage == 1:
            return list(self.classifier.trainable_variables)
        if stage == 2:
            return self._label_variables()
        return list(self.classifier.trainable_variables) + self._label_variables()

    def stage_at(self, epoch: int) -> int:
        """The stage of 0-based ``epoch``."""
        if epoch < self.classification_epochs:
            return 1
        if epoch < self.classification_epochs + self.embedding_epochs:
            return 2
        return 3

    def set_stage(self, stage: int) -> None:
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        self.stage = stage

    # --- compile ----------------------------------------------------------------

    def compile(self, optimizer="adam", *, xla: bool = False, **kwargs):
        """Compiles for RETDM training.

        Args:
          optimizer: one Keras optimizer for every stage (the paper: SGD,
            momentum 0.9, weight decay 1e-4); built here on all trainable
            variables, each stage updates its subset.
          xla: XLA-compile the per-replica loss and gradients (``mltf.core.steps``).
          **kwargs: passed to ``keras.Model.compile``; ``loss`` and
            ``jit_compile`` are fixed.
        """
        if kwargs.pop("loss", None) is not None:
            raise ValueError("'loss' is fixed by RETDMClassifier.compile")
        if kwargs.pop("jit_compile", False) not in (False, "auto"):
            raise ValueError("'jit_compile' is fixed; use xla=True (see mltf.core.steps)")
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        self.xla = bool(xla)
        self._step_fns = {}
        if not self.built:
            raise ValueError("build the model (model.build(shape)) before compile")
        self.optimizer.build(self.stage_variables(3))

    @property
    def metrics(self):
        return list(self.trackers.values())

    # --- the step ------------------------------------------------------------------

    def set_ids(self, labels):
        """(distinct-set index [B] int32, found [B] bool) of multi-hot labels:
        exact match against the table (a matmul, so it runs in XLA and on any
        device)."""
        labels = tf.cast(labels, tf.float32)
        sets = self.label_sets.value
        inter = tf.matmul(labels, sets, transpose_b=True)  # [B, D]
        size = tf.reduce_sum(labels, axis=-1)[:, None]
        match = tf.logical_and(tf.equal(inter, size),
                               tf.equal(tf.reduce_sum(sets, axis=-1)[None, :], size))
        return (tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32),
                tf.reduce_any(match, axis=-1))

    def _losses_and_grads(self, stage, cls_trainable, cls_non_trainable, label_trainable,
                          x, y, found, neighbour_sets, bank_rows, bank_mask, batch_mask):
        cls = self.classifier
        n_hidden = len(self.label_hidden.trainable_variables)
        n_emb = len(self.label_embedding.trainable_variables)
        trained = {1: cls_trainable, 2: label_trainable,
                   3: list(cls_trainable) + list(label_trainable)}[stage]
        with tf.GradientTape() as tape:
            tape.watch(trained)
            (f_i, logits), new_nt = cls.stateless_call(
                cls_trainable, cls_non_trainable, x, training=stage != 2,
                return_features=True)
            f_i = tf.cast(f_i, tf.float32)
            hidden_v = label_trainable[:n_hidden]
            emb_v = label_trainable[n_hidden:n_hidden + n_emb]
            rec_v = label_trainable[n_hidden + n_emb:]

            def embed(labels):
                h, _ = self.label_hidden.stateless_call(hidden_v, [], labels)
                out, _ = self.label_embedding.stateless_call(emb_v, [], h)
                return out

            f_y = embed(y)
            y_rec, _ = self.reconstruction.stateless_call(rec_v, [], f_y)
            bce = cls.bce(y, logits)
            rec = self.mse(y, y_rec)
            f_yn = tf.reshape(embed(tf.reshape(neighbour_sets, [-1, self.num_labels])),
                              [-1, self.k, self.embedding_dim])
            j1_each, a1 = metric_loss(f_i, f_y, f_yn)
            a1 = tf.logical_and(a1, found)
            j1_each = tf.where(found, j1_each, tf.zeros_like(j1_each))
            if not self.two_way:
                j2_each = tf.zeros_like(j1_each)
                a2 = tf.zeros_like(a1)
            elif self.negatives == "bank":
                j2_each, a2 = metric_loss(f_y, f_i, bank_rows, bank_mask)
            else:
                j2_each, a2 = metric_loss_in_batch(f_y, f_i, f_i, batch_mask)
            j1 = steps.per_replica_mean(j1_each)
            j2 = steps.per_replica_mean(j2_each)
            metric = j1 + self.lam * j2
            if stage == 1:
                total = bce
            elif stage == 2:
                total = self.alpha * metric + self.beta * rec
            else:
                total = bce + self.alpha * metric + self.beta * rec
            scaled = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled, trained)
        terms = {"loss": total, "bce": bce, "j1": j1, "j2": j2, "reconstruction": rec}
        active = (tf.cast(a1, tf.float32), tf.cast(a2, tf.float32))
        return terms, active, grads, new_nt, tf.stop_gradient(f_i)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("RETDMClassifier does not take sample weights")
        x = model_input(x)
        y = tf.cast(y, tf.float32)
        stage = self.stage
        ids, found = self.set_ids(y)
        neighbours = tf.gather(self.neighbours.value, ids)  # [B, k]
        neighbour_sets = tf.gather(self.label_sets.value, neighbours)
        step = self.optimizer.iterations
        # The bank serves only two-way J2 with bank negatives; otherwise it is
        # neither read nor written (no all-gather per step).
        uses_bank = self.two_way and self.negatives == "bank"
        if uses_bank:
            bank_read = self.bank.prepare(ids, found, neighbours)  # see MemoryBank.prepare
            bank_rows = bank_read["rows"]
            bank_mask = tf.logical_and(bank_read["filled"], found[:, None])
        else:
            bank_rows = tf.zeros([1, 1, 1])
            bank_mask = tf.zeros([1, 1], tf.bool)
        if self.negatives == "batch":
            in_neighbours = tf.reduce_any(neighbours[:, :, None] == ids[None, None, :], axis=1)
            batch_mask = in_neighbours & found[:, None] & found[None, :]
        else:
            batch_mask = tf.zeros([1, 1], tf.bool)
        if stage not in self._step_fns:
            self._step_fns[stage] = steps.replica_function(
                lambda *args: self._losses_and_grads(stage, *args), self.xla)
        terms, (a1, a2), grads, new_nt, f_i = self._step_fns[stage](
            steps.variable_values(self.classifier.trainable_variables),
            steps.variable_values(self.classifier.non_trainable_variables),
            steps.variable_values(self._label_variables()),
            x, y, found, neighbour_sets, bank_rows, bank_mask, batch_mask)
        if stage != 2:  # stage 2 runs the classifier in inference mode
            steps.assign_synced(self.classifier.non_trainable_variables, new_nt)
        self.optimizer.apply(grads, self.stage_variables(stage))
        if uses_bank:
            last_seen = self.bank.update(ids, f_i, found, step, bank_read)

        batch = tf.shape(y)[0]
        for name, value in terms.items():
            self.trackers[name].update_state(steps.unscaled(value), sample_weight=batch)
        self.trackers["j1_active"].update_state(a1)
        self.trackers["j2_active"].update_state(a2)
        if uses_bank:
            age = tf.cast(self.bank.age(neighbours, step, last_seen), tf.float32)
            self.trackers["bank_age"].update_state(age, sample_weight=tf.cast(bank_mask, tf.float32))
            self.trackers["bank_filled"].update_state(
                tf.reduce_mean(tf.cast(last_seen >= 0, tf.float32)))
        return steps.step_logs({m.name: m.result() for m in self.metrics})

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = model_input(x)
        logits = self.classifier(x, training=False, return_logits=True)
        self.trackers["bce"].update_state(steps.unscaled(self.classifier.bce(y, logits)))
        return steps.step_logs({"bce": self.trackers["bce"].result()})

    def get_config(self):
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "num_sets": self.num_sets, "k": self.k, "alpha": self.alpha,
            "beta": self.beta, "lam": self.lam, "two_way": self.two_way,
            "negatives": self.negatives, "bank_momentum": self.bank_momentum,
            "label_units": self.label_units,
            "embedding_activation": self.embedding_activation,
            "classification_epochs": self.classification_epochs,
            "embedding_epochs": self.embedding_epochs,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


class StageSchedule(keras.callbacks.Callback):
    """Puts a ``RETDMClassifier`` in the stage of each epoch
    (``stage_at``), rebuilds the train function when the stage changes, logs
    ``retdm_stage``, and restarts the given ``ReduceLROnPlateau`` callbacks'
    patience at each new stage (stage 2 leaves the classifier, hence
    ``val_loss``, unchanged, which would otherwise count as a plateau).

    Args:
      plateau_callbacks: ``keras.callbacks.ReduceLROnPlateau`` instances.
      verbose: print a line at each stage change.
    """

    def __init__(self, plateau_callbacks=(), verbose: bool = True):
        super().__init__()
        self.plateau_callbacks = list(plateau_callbacks)
        self.verbose = verbose
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        stage = self.model.stage_at(epoch)
        if stage == self._current:
            return
        self.model.set_stage(stage)
        self.model.make_train_function(force=True)
        if epoch == 0 or self.model.stage_at(epoch - 1) != stage:
            # A new stage, not a resumed run's first epoch (whose counters
            # mltf.run_state brought back).
            for cb in self.plateau_callbacks:
                cb._reset()  # keras's own restart: wait, cooldown and best
        if self.verbose:
            print(f"RETDM stage {stage} from epoch {epoch + 1}", flush=True)
        self._current = stage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["retdm_stage"] = float(self._current)


def label_set_table(labels, k: int = 10):
    """(distinct sets [D, C], neighbours [D, k], seconds taken) of a training
    split's multi-hot labels [N, C]."""
    start = time.time()
    sets, _, counts = distinct_label_sets(labels)
    neighbours, _ = knn_table(sets, k, counts)
    return sets, neighbours, time.time() - start


@gin.configurable(module="mltf", denylist=["classifier", "labels"])
def build_retdm(classifier, labels, k: int = 10, alpha: float = 1.0, beta: float = 1.0,
                lam: float = 1.0, two_way: bool = True, negatives: str = "bank",
                bank_momentum: float = 0.9, label_units: int = 512,
                embedding_activation: Optional[str] = "relu",
                classification_epochs: int = 0, embedding_epochs: int = 0):
    """The RETDM model around ``classifier`` with the kNN table of the
    training ``labels`` [N, C] (gin: ``mltf.build_retdm``; the other
    arguments as in ``RETDMClassifier``)."""
    sets, neighbours, seconds = label_set_table(labels, k)
    print(f"RETDM: kNN table of {len(sets):,} distinct label sets (k={k}) "
          f"in {seconds:.1f} s", flush=True)
    return RETDMClassifier(
        classifier, num_sets=len(sets), k=k, alpha=alpha, beta=beta, lam=lam,
        two_way=two_way, negatives=negatives, bank_momentum=bank_momentum,
        label_units=label_units, embedding_activation=embedding_activation,
        classification_epochs=classification_epochs, embedding_epochs=embedding_epochs,
        label_sets=sets, neighbours=neighbours, name="retdm")
