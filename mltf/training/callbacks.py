"""Keras callbacks of mltf's training runs."""

import os
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from mltf import metrics as metrics_lib
from mltf.inference import predict_dataset
from mltf.metrics import demo as demo_lib
from mltf.training import diagnostics, run_files
from mltf.training.ema import averaged_weights


def bce(y, s, eps=1e-7):
    """Mean binary cross-entropy of probabilities ``s`` (numpy)."""
    s = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))


class FullSetEvaluation(keras.callbacks.Callback):
    """Computes every ``mltf.metrics`` metric over the whole evaluation set at
    the end of each ``every``-th epoch and adds them to the epoch's logs as
    ``val_<key>`` (so TensorBoard, the CSV log and ``ModelCheckpoint(monitor=
    "val_mAP")`` see them), plus ``val_loss``, the BCE over the set, for
    ``ReduceLROnPlateau`` (no second pass over the data). Metrics over a whole
    set, not averaged over batches: mAP and F1 are not batch-decomposable.
    With an optimizer's ``use_ema`` the averaged weights are evaluated
    (``mltf.training.ema``).

    Given the training split's label sets, it adds the dependency
    diagnostics too (``mltf.metrics.dependency_diagnostics`` at 0.5: the
    ``DEPENDENCY_KEYS`` as ``val_<key>``) and, given ``image_dir``, draws
    their co-occurrence matrices into TensorBoard
    (``mltf.training.diagnostics.CooccurrenceImages``, outside the kill-safe
    state). Given a demo split's ``mltf.metrics.demo.SceneTruth`` (the
    dataset then yields its record ids), it adds the demo diagnostics at 0.5
    (``mltf.metrics.demo.DEMO_KEYS`` as ``val_<key>``).

    Must come before the callbacks that read those logs.

    Args:
      dataset: a finite (x, y) dataset (one pass).
      every: evaluate every this many epochs (and always on the last).
      prefix: key prefix.
      train_labels: multi-hot ``[M, C]`` label sets of the examples trained
        on; None: no dependency diagnostics.
      image_dir: folder of the co-occurrence images' event files; None: no
        images (a worker that is not the chief).
      demo: the evaluation split's ``SceneTruth``; None: no demo diagnostics.
    """

    def __init__(self, dataset, every: int = 1, prefix: str = "val_",
                 train_labels=None, image_dir: Optional[str] = None, demo=None):
        super().__init__()
        self.dataset = dataset
        self.every = max(1, int(every))
        self.prefix = prefix
        self.train_labels = train_labels
        self.images = (diagnostics.CooccurrenceImages(image_dir)
                       if image_dir and train_labels is not None else None)
        self.last: Optional[Dict] = None
        self.last_diagnostics: Optional[Dict] = None
        self.demo = demo

    def on_epoch_end(self, epoch, logs=None):
        last_epoch = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and (last_epoch is None or epoch + 1 != last_epoch):
            return
        with averaged_weights(self.model):
            if self.demo is None:
                ids, (y, s) = None, predict_dataset(self.model, self.dataset)
            else:
                ids, y, s = predict_dataset(self.model, self.dataset, with_ids=True)
        self.last = metrics_lib.compute_all(y, s)
        if logs is not None:
            for key, value in self.last.items():
                if not key.startswith("num_"):  # counts are not metrics
                    logs[self.prefix + key] = value
            logs[self.prefix + "loss"] = bce(y, s)
            self._log_demo(ids, y, s, logs)
        if self.train_labels is None:
            return
        self.last_diagnostics = metrics_lib.dependency_diagnostics(y, s, self.train_labels)
        if logs is not None:
            for key in metrics_lib.DEPENDENCY_KEYS:
                logs[self.prefix + key] = self.last_diagnostics[key]
        if self.images is not None:
            self.images.write(self.last_diagnostics, epoch)

    def _log_demo(self, ids, y, s, logs):
        if self.demo is None:
            return
        found = demo_lib.diagnostics_or_none(self.demo, ids, y, s, program="mltf.train")
        if found is None:  # warned once: the records will not change
            self.demo = None
            return
        for key in demo_lib.DEMO_KEYS:
            logs[self.prefix + key] = found[key]

    def on_train_end(self, logs=None):
        if self.images is not None:
            self.images.close()


class TerminateOnNaNWithMessage(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss and says what to try."""

    def __init__(self):
        super().__init__()
        self.stopped_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.stopped_at = batch
            self.model.stop_training = True
            print(f"\nmltf: the loss became {float(loss)} at batch {batch}; training "
                  "stopped. Try a lower learning rate (e.g. "
                  "--gin_bindings='mltf.train.learning_rate = 1e-4'), check the "
                  "input scaling (pipelines.InputConfig.preprocessing), or turn "
                  "mixed precision off.", flush=True)


class OperativeConfigWriter(keras.callbacks.Callback):
    """Writes gin's operative config to ``<model_dir>/operative_config.gin``
    and as text to TensorBoard, when training starts (every configurable has
    been called by then) and when it ends."""

    def __init__(self, model_dir: str, log_dir: str):
        super().__init__()
        self.model_dir = model_dir
        self.log_dir = log_dir

    def _write(self, step):
        import gin
        text = gin.operative_config_str()
        run_files.atomic_text(os.path.join(self.model_dir, "operative_config.gin"), text)
        writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "config"))
        with writer.as_default():
            # Markdown code block, so TensorBoard keeps the line breaks.
            tf.summary.text("operative_config",
                            "    " + text.replace("\n", "\n    "), step=step)
        writer.flush()

    def on_train_begin(self, logs=None):
        self._write(0)

    def on_train_end(self, logs=None):
        self._write(1)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizers' current learning rates to each epoch's logs, so
    the CSV log has them too (Keras's TensorBoard callback logs them only to
    TensorBoard): ``learning_rate`` for the model's ``optimizer``,
    ``learning_rate_<name>`` for an optimizer attribute ``<name>_optimizer``
    (WGAN-gp's ``critic`` and ``generator``)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizers = {"learning_rate": getattr(self.model, "optimizer", None)}
        for attr, value in sorted(vars(self.model).items()):
            if attr.endswith("_optimizer") and not attr.startswith("_"):
                optimizers[f"learning_rate_{attr[:-len('_optimizer')]}"] = value
        for key, optimizer in optimizers.items():
            if isinstance(optimizer, keras.optimizers.Optimizer) and key not in logs:
                logs[key] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def checkpoint_mode(metric: str) -> str:
    """``"min"`` for losses and the lower-is-better ranking criteria,
    ``"max"`` otherwise.

    Args:
        metric: a log key such as ``val_mAP`` or ``val_loss``.
    """
    lower_is_better = ("loss", "one_error", "coverage", "cooccurrence_gap", "cardinality_tvd")
    return "min" if metric.endswith(lower_is_better) else "max"
