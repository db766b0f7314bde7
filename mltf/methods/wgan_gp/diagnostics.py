"""What the WGAN-gp critic has learned, measured on held-out images each
epoch (issue 14): margins and AUCs of the critic and a softness baseline.

On a batch of images x with real label sets y, generated sets y^ (G's
Gumbel-sigmoid sample, as the critic sees them in training) and mismatched
sets y' (another training image's set, ``mismatch.MismatchSampler``):

- margins: mean D(y, x) - D(y^, x) and mean D(y, x) - D(y', x);
- AUCs of the critic's score separating real pairs from generated ones and
  from mismatched ones (1: every real pair scored above every other pair,
  0.5: chance);
- the softness baseline: the AUC of -softness(y), softness(y) =
  sum_j min(y_j, 1 - y_j), separating real sets (softness 0) from generated
  ones. Real sets are binary and relaxed samples are not, so a critic whose
  generated AUC is no better than this may only have learned softness, not
  which label sets fit which images.
"""

from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from mltf.methods.wgan_gp.mismatch import MismatchSampler
from pipelines.input import model_input

KEYS = ("critic_margin_generated", "critic_margin_mismatched", "critic_auc_generated",
        "critic_auc_mismatched", "softness_auc")


def softness(label_sets) -> np.ndarray:
    """sum_j min(y_j, 1 - y_j) per set of ``label_sets`` [B, C]: 0 for a
    binary set, up to C / 2."""
    y = np.asarray(label_sets, np.float64)
    return np.minimum(y, 1.0 - y).sum(axis=-1)


def separation_auc(real_scores, other_scores) -> float:
    """AUC of scores ranking real examples (positives) above the others,
    ties counted half (``sklearn.metrics.roc_auc_score``)."""
    real, other = np.ravel(real_scores), np.ravel(other_scores)
    labels = np.concatenate([np.ones(len(real)), np.zeros(len(other))])
    return float(roc_auc_score(labels, np.concatenate([real, other])))


def critic_diagnostics(d_real, d_generated, d_mismatched, generated_sets) -> Dict[str, float]:
    """The ``KEYS`` from critic scores of the same images' real, generated
    and mismatched pairs ([B] each) and the generated sets [B, C]. Real sets
    are binary, so their softness is 0."""
    d_real, d_generated, d_mismatched = (np.ravel(d) for d in (d_real, d_generated,
                                                                d_mismatched))
    return {"critic_margin_generated": float(np.mean(d_real - d_generated)),
            "critic_margin_mismatched": float(np.mean(d_real - d_mismatched)),
            "critic_auc_generated": separation_auc(d_real, d_generated),
            "critic_auc_mismatched": separation_auc(d_real, d_mismatched),
            "softness_auc": separation_auc(np.zeros(len(d_real)),
                                           -softness(generated_sets))}


class CriticDiagnostics(keras.callbacks.Callback):
    """Adds ``critic_diagnostics`` of a ``WGANGPClassifier`` on at most
    ``max_images`` images of ``dataset`` to each epoch's logs, as
    ``<prefix><key>`` (so the CSV log and TensorBoard get them). G samples
    in inference mode with the current inverse temperature; the noise and
    the mismatched draws are seeded by the model's seed and the epoch, so an
    epoch's figures do not depend on earlier calls. The mismatched figures
    are measured with ``negative_sampling=False`` too (the critic is then
    not trained on such pairs, so they show what it learned without them);
    an unconditional critic scores y' like any real set (AUC near 0.5).

    Args:
      dataset: finite ``(x, y)`` batches of held-out images (the selection
        split).
      train_labels: multi-hot ``[N, C]`` training label sets the mismatched
        sets are drawn from.
      max_images: images used per epoch (the first ones of ``dataset``).
      prefix: key prefix (``val_``, like the other selection-split logs).
    """

    def __init__(self, dataset, train_labels, max_images: int = 256, prefix: str = "val_"):
        super().__init__()
        self.dataset = dataset
        self.train_labels = train_labels
        self.max_images = int(max_images)
        self.prefix = prefix
        self._sampler: Optional[MismatchSampler] = None
        self.last: Optional[Dict[str, float]] = None

    def _batch(self):
        images, labels, count = [], [], 0
        for batch in self.dataset:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            images.append(model_input(x))
            labels.append(tf.cast(y, tf.float32))
            count += int(labels[-1].shape[0])
            if count >= self.max_images:
                break
        return (tf.concat(images, 0)[:self.max_images],
                tf.concat(labels, 0)[:self.max_images])

    def evaluate(self, epoch: int) -> Dict[str, float]:
        """The diagnostics of the model as it is now (``epoch`` seeds the draws)."""
        model = self.model
        x, y = self._batch()
        seed = tf.constant([model.seed, 1000003 + epoch], tf.int32)
        logits = model.generator(x, training=False, return_logits=True)
        generated = model._sample(logits, seed, model._temperature())
        z = model._features(x)
        d_real = model.critic(y, z)
        d_generated = model.critic(generated, z)
        if self._sampler is None:
            self._sampler = MismatchSampler(self.train_labels)
        mismatched = self._sampler.sample(y, seed + 1)
        d_mismatched = keras.ops.convert_to_numpy(model.critic(mismatched, z))
        return critic_diagnostics(
            keras.ops.convert_to_numpy(d_real), keras.ops.convert_to_numpy(d_generated),
            d_mismatched, keras.ops.convert_to_numpy(generated))

    def on_epoch_end(self, epoch, logs=None):
        self.last = self.evaluate(epoch)
        if logs is not None:
            for key, value in self.last.items():
                logs[self.prefix + key] = value
