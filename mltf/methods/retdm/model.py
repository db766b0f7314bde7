"""The RETDM model (seed 001): the joint loss of eq. 13 and its stages."""

from typing import Optional

import gin
import keras
import numpy as np
import tensorflow as tf

from mltf.core import steps
from mltf.methods.base import LabelDependencyModel
from mltf.methods.retdm.knn import label_set_table
from mltf.methods.retdm.losses import metric_loss, metric_loss_in_batch
from mltf.methods.retdm.memory_bank import MemoryBank
from mltf.models.classifier import OneOptimizerCompileConfig
from pipelines.input import model_input


@keras.saving.register_keras_serializable(package="mltf")
class RETDMClassifier(OneOptimizerCompileConfig, LabelDependencyModel):
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
    active, and the memory bank's age are logged in every stage; in stage 3
    also ``metric_grad_ratio``, ||d(alpha J_metric)/d f_I|| / ||d L_cls /
    d f_I|| over the replica's batch (0 in stages 1-2), how much the metric
    pulls on the image embeddings next to the BCE.

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
      normalize_embeddings: J1 and J2 measure distances between unit vectors
        (f_I, f_y, the neighbours' f_y and the bank's or batch's f_I, each
        divided by its L2 norm; the reconstruction still reads the raw f_y).
        False (seed 001: Euclidean distances of the raw embeddings) keeps
        models saved before it unchanged.
      label_sets: the distinct training sets [D, C] (multi-hot); stored as a
        weight (omit when loading: the weights carry it).
      neighbours: their kNN table [D, k] (``knn_table``), stored likewise.
      **kwargs: ``keras.Model`` arguments.
    """

    tracker_names = ("loss", "bce", "j1", "j2", "reconstruction", "j1_active", "j2_active",
                     "bank_age", "bank_filled", "metric_grad_ratio")

    def __init__(self, classifier, num_sets: int, k: int = 10, alpha: float = 1.0,
                 beta: float = 1.0, lam: float = 1.0, two_way: bool = True,
                 negatives: str = "bank", bank_momentum: float = 0.9,
                 label_units: int = 512, embedding_activation: Optional[str] = "relu",
                 classification_epochs: int = 0, embedding_epochs: int = 0,
                 normalize_embeddings: bool = False, label_sets=None, neighbours=None,
                 **kwargs):
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
        self.normalize_embeddings = bool(normalize_embeddings)
        self._initial_tables = (label_sets, neighbours)
        # float32: distances and the softmax stay exact under mixed precision.
        self.label_hidden = keras.layers.Dense(self.label_units, activation="relu",
                                               dtype="float32", name="label_hidden")
        self.label_embedding = None  # sized to f_I in build
        self.reconstruction = keras.layers.Dense(self.num_labels, dtype="float32",
                                                 name="reconstruction")
        self.mse = keras.losses.MeanSquaredError(name="reconstruction")
        self.stage = 3
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
        super().compile(optimizer=optimizer, jit_compile=False,
                        **self.compile_arguments(kwargs))
        self.xla = bool(xla)
        self._step_fns = {}
        if not self.built:
            raise ValueError("build the model (model.build(shape)) before compile")
        self.optimizer.build(self.stage_variables(3))

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
        # Persistent in stage 3 only: two more gradients, wrt f_I alone, for
        # metric_grad_ratio (they stop at f_I, so the backbone is not run back twice).
        with tf.GradientTape(persistent=stage == 3) as tape:
            tape.watch(trained)
            (features, logits), new_nt = cls.stateless_call(
                cls_trainable, cls_non_trainable, x, training=stage != 2,
                return_features=True)
            f_i = tf.cast(features, tf.float32)
            hidden_v = label_trainable[:n_hidden]
            emb_v = label_trainable[n_hidden:n_hidden + n_emb]
            rec_v = label_trainable[n_hidden + n_emb:]

            def embed(labels):
                h, _ = self.label_hidden.stateless_call(hidden_v, [], labels)
                out, _ = self.label_embedding.stateless_call(emb_v, [], h)
                return out

            f_y = embed(y)
            y_rec, _ = self.reconstruction.stateless_call(rec_v, [], f_y)
            bce = cls.classification_loss(y, logits)
            rec = self.mse(y, y_rec)
            f_yn = tf.reshape(embed(tf.reshape(neighbour_sets, [-1, self.num_labels])),
                              [-1, self.k, self.embedding_dim])
            f_im, f_ym = f_i, f_y  # what J1 and J2 compare
            if self.normalize_embeddings:
                # Unfilled bank rows are zeros and stay zeros (masked out anyway).
                f_im, f_ym, f_yn, bank_rows = (tf.math.l2_normalize(v, axis=-1)
                                               for v in (f_i, f_y, f_yn, bank_rows))
            j1_each, a1 = metric_loss(f_im, f_ym, f_yn)
            a1 = tf.logical_and(a1, found)
            j1_each = tf.where(found, j1_each, tf.zeros_like(j1_each))
            if not self.two_way:
                j2_each = tf.zeros_like(j1_each)
                a2 = tf.zeros_like(a1)
            elif self.negatives == "bank":
                j2_each, a2 = metric_loss(f_ym, f_im, bank_rows, bank_mask)
            else:
                j2_each, a2 = metric_loss_in_batch(f_ym, f_im, f_im, batch_mask)
            j1 = steps.per_replica_mean(j1_each)
            j2 = steps.per_replica_mean(j2_each)
            weighted_metric = self.alpha * (j1 + self.lam * j2)
            if stage == 1:
                total = bce
            elif stage == 2:
                total = weighted_metric + self.beta * rec
            else:
                total = bce + weighted_metric + self.beta * rec
            scaled = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled, trained)
        ratio = tf.zeros([])
        if stage == 3:
            ratio = _norm_ratio(tape.gradient(weighted_metric, features),
                                tape.gradient(bce, features))
        terms = {"loss": total, "bce": bce, "j1": j1, "j2": j2, "reconstruction": rec}
        active = (tf.cast(a1, tf.float32), tf.cast(a2, tf.float32))
        return terms, active, grads, new_nt, tf.stop_gradient(f_i), ratio

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
        terms, (a1, a2), grads, new_nt, f_i, ratio = self._step_fns[stage](
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
        self.trackers["metric_grad_ratio"].update_state(ratio)
        if uses_bank:
            age = tf.cast(self.bank.age(neighbours, step, last_seen), tf.float32)
            self.trackers["bank_age"].update_state(
                age, sample_weight=tf.cast(bank_mask, tf.float32))
            self.trackers["bank_filled"].update_state(
                tf.reduce_mean(tf.cast(last_seen >= 0, tf.float32)))
        return self.logs()

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_sets": self.num_sets, "k": self.k, "alpha": self.alpha,
            "beta": self.beta, "lam": self.lam, "two_way": self.two_way,
            "negatives": self.negatives, "bank_momentum": self.bank_momentum,
            "label_units": self.label_units,
            "embedding_activation": self.embedding_activation,
            "classification_epochs": self.classification_epochs,
            "embedding_epochs": self.embedding_epochs,
            "normalize_embeddings": self.normalize_embeddings,
        })
        return config


def _norm_ratio(numerator, denominator):
    """||numerator|| / ||denominator|| of two gradients (0 where one is
    None, the term not depending on f_I, or the denominator is 0)."""
    if numerator is None or denominator is None:
        return tf.zeros([])
    norm = [tf.norm(tf.cast(g, tf.float32)) for g in (numerator, denominator)]
    return tf.math.divide_no_nan(norm[0], norm[1])


@gin.configurable(module="mltf", denylist=["classifier", "labels"])
def build_retdm(classifier, labels, k: int = 10, alpha: float = 1.0, beta: float = 1.0,
                lam: float = 1.0, two_way: bool = True, negatives: str = "bank",
                bank_momentum: float = 0.9, label_units: int = 512,
                embedding_activation: Optional[str] = "relu",
                classification_epochs: int = 0, embedding_epochs: int = 0,
                normalize_embeddings: bool = False):
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
        normalize_embeddings=normalize_embeddings, label_sets=sets, neighbours=neighbours,
        name="retdm")
