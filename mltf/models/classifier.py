"""The BCE multi-label classifier: the baseline both papers start from.

A backbone (a feature extractor, ``mltf.backbones``) and a task head: one
dense layer with a sigmoid per label. The head's logits feed a binary
cross-entropy computed from logits (numerically stable); ``call`` returns
probabilities, so ``predict`` and ``evaluate`` give scores in [0, 1].

Per-class decision thresholds live in the model as a non-trainable weight
(0.5 until ``set_thresholds``), so they are saved with it and ``mltf.predict``
uses them. The input scaling the classifier was trained with
(``preprocessing``, a ``pipelines.preprocessing`` mode) is saved in its
config, so inference reads it from the model instead of guessing it from the
backbone's name (files written before it have None there).
"""

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from mltf.core import optimizers  # noqa: F401  (a saved optimizer's class)
from mltf.core import steps
from mltf.losses.bce import LabelSummedBCE


def labels_per_image(logits):
    """Mean number of labels predicted at threshold 0.5 (logit >= 0)."""
    return tf.reduce_mean(tf.reduce_sum(tf.cast(logits >= 0.0, tf.float32), axis=-1))


def fixed_compile_arguments(model, kwargs) -> None:
    """Removes ``loss`` and ``jit_compile`` from ``compile`` arguments, which a
    model with its own loss and ``xla`` switch fixes. A saved compile config
    (``load_model``) carries ``loss=None`` and ``jit_compile=False``; anything
    else would be silently ignored, so it is refused."""
    name = type(model).__name__
    if kwargs.pop("loss", None) is not None:
        raise ValueError(f"'loss' is fixed by {name}.compile")
    if kwargs.pop("jit_compile", False) not in (False, "auto"):
        raise ValueError(f"'jit_compile' is fixed by {name}.compile; use xla=True "
                         "(per-replica XLA, see mltf.core.steps)")


class OneOptimizerCompileConfig:
    """For models whose ``compile(optimizer, *, xla)`` fixes the loss: saves
    ``xla`` with Keras's compile config and re-compiles a loaded model from
    it, so its optimizer state is restored."""

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["xla"] = self.xla
        return config

    def compile_from_config(self, config):
        config = dict(config)
        optimizer = config.pop("optimizer", None)
        if isinstance(optimizer, dict):
            optimizer = keras.optimizers.deserialize(optimizer)
        self.compile(optimizer=optimizer or "adam", **config)


@keras.saving.register_keras_serializable(package="mltf")
class MultiLabelClassifier(steps.PrebuiltFit, OneOptimizerCompileConfig, keras.Model):
    """Backbone + one dense sigmoid layer per label, trained with BCE (or
    the classification loss given).

    Args:
      backbone: a ``keras.Model`` from inputs to pooled features [B, D].
      num_labels: number of labels C.
      label_names: optional names of the C labels, saved with the model.
      dropout: dropout rate on the features before the head.
      label_smoothing: BCE label smoothing (default loss only).
      preprocessing: the input scaling mode of the images it takes
        (``"caffe"``, ``"tf"``, ``"torch"``, ``"unit"``, ``"none"``), saved
        for inference; None when unknown (files from before it was saved).
      label_reduction: how the classification loss reduces over the labels
        of an example: ``"mean"`` (Keras's) or ``"sum"`` (the papers'
        equations; C times the mean, ``mltf.losses.LabelSummedBCE`` for the
        default BCE). A ``loss`` with a ``label_reduction`` of its own
        (``mltf.losses.AsymmetricLoss``, ``FocalLoss``) must have the same.
      loss: the classification loss, a ``keras.losses.Loss`` on (multi-hot
        labels, logits [B, C]) that scales per replica like Keras's own
        (``sum_over_batch_size``); saved with the model (register its class
        with ``keras.saving.register_keras_serializable``). Default: binary
        cross-entropy from logits with ``label_smoothing``. Every method uses
        it as its classification term.
      **kwargs: ``keras.Model`` arguments (``name``, ``dtype``).
    """

    def __init__(self, backbone: keras.Model, num_labels: int,
                 label_names: Optional[Sequence[str]] = None,
                 dropout: float = 0.0, label_smoothing: float = 0.0,
                 preprocessing: Optional[str] = None,
                 loss: Optional[keras.losses.Loss] = None, label_reduction: str = "mean",
                 **kwargs):
        super().__init__(**kwargs)
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label names for {num_labels} labels")
        self.backbone = backbone
        self.num_labels = int(num_labels)
        self.label_names = list(label_names) if label_names is not None else None
        self.dropout = float(dropout)
        self.label_smoothing = float(label_smoothing)
        self.preprocessing = preprocessing
        self.label_reduction = label_reduction
        self.feature_dropout = keras.layers.Dropout(self.dropout, name="feature_dropout")
        # float32 head: logits and the loss stay exact under mixed precision.
        self.head = keras.layers.Dense(self.num_labels, dtype="float32", name="head")
        self.set_loss(loss)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.labels_tracker = keras.metrics.Mean(name="labels_per_image")
        self.xla = False
        self._step_fn = None

    def build(self, input_shape):
        self.backbone.build(input_shape)
        features = self.backbone.compute_output_shape(input_shape)
        self.head.build(features)
        self.thresholds = self.add_weight(
            shape=(self.num_labels,), initializer=keras.initializers.Constant(0.5),
            trainable=False, name="thresholds")
        self.built = True

    def call(self, inputs, training=False, return_logits=False, return_features=False):
        """Probabilities [B, C]; logits with ``return_logits``; with
        ``return_features`` the pair (backbone features, logits), for models
        that train on the features too (RETDM's image embedding)."""
        features = self.backbone(inputs, training=training)
        logits = self.head(self.feature_dropout(features, training=training))
        if return_features:
            return features, logits
        return logits if return_logits else keras.ops.sigmoid(logits)

    # --- compile and steps --------------------------------------------------

    def compile(self, optimizer="adam", *, xla: bool = True, **kwargs):
        """Compiles for BCE training.

        Args:
          optimizer: a Keras optimizer or its name.
          xla: XLA-compile the per-replica step (works under MirroredStrategy,
            see ``mltf.core.steps``). Keras's own ``jit_compile`` is always off.
          **kwargs: passed to ``keras.Model.compile`` (e.g.
            ``steps_per_execution``); ``loss`` and ``jit_compile`` are fixed.
        """
        fixed_compile_arguments(self, kwargs)
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        self.xla = bool(xla)
        self._step_fn = None
        # Built here, not lazily in fit: a lazily built optimizer fails under
        # MirroredStrategy.
        if not self.built:
            raise ValueError("build the model (call it on a batch or "
                             "model.build(shape)) before compile")
        self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, self.labels_tracker]

    def _loss_and_grads(self, trainable, non_trainable, x, y, sample_weight):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            logits, new_non_trainable = self.stateless_call(
                trainable, non_trainable, x, training=True, return_logits=True)
            loss = self.classification_loss(y, logits, sample_weight=sample_weight)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable)
        return loss, grads, new_non_trainable, logits

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._step_fn is None:
            self._step_fn = steps.replica_function(self._loss_and_grads, self.xla)
        loss, grads, new_non_trainable, logits = self._step_fn(
            steps.variable_values(self.trainable_variables),
            steps.variable_values(self.non_trainable_variables), x, y, sample_weight)
        steps.assign_synced(self.non_trainable_variables, new_non_trainable)
        self.optimizer.apply(grads, self.trainable_variables)
        self._track(steps.unscaled(loss), logits, y)
        return steps.step_logs({m.name: m.result() for m in self.metrics})

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logits = self(x, training=False, return_logits=True)
        loss = self.classification_loss(y, logits, sample_weight=sample_weight)
        self._track(steps.unscaled(loss), logits, y)
        return steps.step_logs({m.name: m.result() for m in self.metrics})

    def _track(self, loss, logits, y):
        batch = tf.shape(logits)[0]
        self.loss_tracker.update_state(loss, sample_weight=batch)
        self.labels_tracker.update_state(labels_per_image(logits), sample_weight=batch)

    # --- thresholds and config ----------------------------------------------

    def set_loss(self, loss: Optional[keras.losses.Loss]) -> None:
        """Sets the classification loss (None: BCE with ``label_smoothing``,
        reduced over labels by ``label_reduction``)."""
        if self.label_reduction not in ("mean", "sum"):
            raise ValueError("label_reduction must be 'mean' or 'sum', got "
                             f"{self.label_reduction!r}")
        if loss is not None and self.label_smoothing:
            raise ValueError("label_smoothing applies to the default BCE; give it to "
                             "the loss instead")
        own = getattr(loss, "label_reduction", self.label_reduction)
        if own != self.label_reduction:
            # The methods' loss weights (seed 000's alpha) are chosen for one reduction.
            raise ValueError(
                f"the loss {type(loss).__name__} reduces over the labels by {own!r}, the "
                f"classifier by {self.label_reduction!r}: set both alike "
                f"(mltf.train.label_reduction and mltf.losses.{type(loss).__name__}"
                ".label_reduction)")
        self.custom_loss = loss
        if loss is not None:
            self.classification_loss = loss
        elif self.label_reduction == "sum":
            self.classification_loss = LabelSummedBCE(label_smoothing=self.label_smoothing)
        else:
            self.classification_loss = keras.losses.BinaryCrossentropy(
                from_logits=True, label_smoothing=self.label_smoothing, name="bce")

    def set_thresholds(self, thresholds):
        """Sets the per-class decision thresholds (saved with the model)."""
        thresholds = np.asarray(thresholds, np.float32).reshape(-1)
        if thresholds.shape != (self.num_labels,):
            raise ValueError(f"need {self.num_labels} thresholds, got {thresholds.shape}")
        self.thresholds.assign(thresholds)

    def get_config(self):
        config = super().get_config()
        config.update({
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_labels": self.num_labels,
            "label_names": self.label_names,
            "dropout": self.dropout,
            "label_smoothing": self.label_smoothing,
            "preprocessing": self.preprocessing,
            "loss": (keras.saving.serialize_keras_object(self.custom_loss)
                     if self.custom_loss is not None else None),
            "label_reduction": self.label_reduction,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "loss"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _without_dtypes(config):
    if isinstance(config, dict):
        return {k: _without_dtypes(v) for k, v in config.items() if k != "dtype"}
    if isinstance(config, list):
        return [_without_dtypes(v) for v in config]
    return config


def in_global_policy(model: MultiLabelClassifier) -> MultiLabelClassifier:
    """``model`` rebuilt so its layers follow the global dtype policy, with
    its weights: a classifier saved in float32 loads with its layers' saved
    float32 policy, so ``mixed_precision`` would silently not reach it. The
    head stays float32 (it is made so), and so do the logits and the loss.
    Returns ``model`` itself when every layer already follows the policy."""
    policy = keras.mixed_precision.global_policy().name
    if all(layer.dtype_policy.name == policy for layer in model.backbone._flatten_layers()
           if not isinstance(layer, keras.layers.InputLayer)):
        return model
    config = _without_dtypes(keras.saving.serialize_keras_object(model))
    fresh = keras.saving.deserialize_keras_object(config)
    if not fresh.built:  # the config's build entry builds it
        fresh.build(model.backbone.input_shape)
    fresh.set_weights(model.get_weights())
    return fresh
