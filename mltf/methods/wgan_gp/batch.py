"""The batch layout of one WGAN-gp step.

The input pipeline yields batches of ``slots * b`` examples (``slots =
3 n_critic + 1``, or ``2 n_critic + 1`` without negative sampling, or 1 with
``batches="shared"``); the step cuts its per-replica batch into ``slots``
equal chunks, in order: for each critic update matched, generated,
(mismatched); then the generator's chunk. Examples are shuffled i.i.d., so
any partition is as good as another, and under a MirroredStrategy each
replica gets whole chunks without any transpose of the images.
"""

import tensorflow as tf

from mltf.core import steps
from pipelines.input import model_input


class Chunks:
    """One step's per-replica batch cut into the model's ``slots`` equal
    chunks, with fext and G's (fixed) logits computed once per drawn chunk
    and reused by every term and critic update that needs them.

    ``generator_state`` is G's non-trainable state for the generator update:
    the variables' values, with the random-seed state advanced by the
    generated chunks' training-mode forwards (``critic_samples="train"``).

    Args:
      model: the ``WGANGPClassifier`` (its ``slots``, its compiled fext and
        logits functions).
      x: the step's inputs, ``{"images", "mismatched_labels"}``.
      y: the step's label sets.
    """

    def __init__(self, model, x, y):
        if not isinstance(x, dict) or ("mismatched_labels" not in x and model.negative_sampling):
            raise ValueError("WGANGPClassifier needs inputs {'images', 'mismatched_labels'} "
                             "(the wgan_gp method adds mismatched_labels to the training "
                             "input: mltf.methods.wgan_gp.MismatchedLabels)")
        self.model = model
        self._images = model_input(x)
        self._labels = y
        self._mismatched = x.get("mismatched_labels", y)
        n = tf.shape(y)[0]
        self.size = n // model.slots
        tf.debugging.assert_equal(self.size * model.slots, n, message=(
            f"the per-replica batch must be {model.slots} chunks of equal size"))
        self._features, self._logits = {}, {}
        self.generator_trainable = steps.variable_values(model.generator.trainable_variables)
        self.generator_state = steps.variable_values(model.generator.non_trainable_variables)

    def _chunk(self, t, i):
        return t[i * self.size:(i + 1) * self.size]

    def images(self, i):
        return self._chunk(self._images, i)

    def labels(self, i):
        return self._chunk(self._labels, i)

    def mismatched(self, i):
        return None if i is None else self._chunk(self._mismatched, i)

    def features(self, i):
        if i is None or not self.model.critic.conditional:
            return None
        if i not in self._features:
            self._features[i] = self.model._features_fn(self.images(i))
        return self._features[i]

    def logits(self, i):
        if i not in self._logits:
            self._logits[i], state = self.model._logits_fn(
                self.generator_trainable, self.generator_state, self.images(i))
            # Float state (BatchNorm moving statistics) is kept: G is not
            # updated here. Integer state (seed counters) goes on: fresh masks.
            self.generator_state = [old if new.dtype.is_floating else new
                                    for old, new in zip(self.generator_state, state)]
        return self._logits[i]
