"""The critic warm-up of a WGAN-gp run: ``critic_warmup`` critic updates
with the generator fixed, before the alternating updates (issue 14 item 4;
seed 000 has none: its pretrained generators were "strong enough" to train
the critic 3 times per generator update from the start, sec. 4.1).

A warm-up step is an ordinary step (the same batch layout and ``n_critic``
critic updates) whose generator update is undone: the step is one compiled
function, and an optimizer update cannot sit in a ``tf.cond`` under a
MirroredStrategy (it all-reduces inside), so the update runs and every
variable it changed goes back to its value before the step, selected with
``tf.where`` and so bit-identical: G's weights and BatchNorm statistics and
the generator optimizer's state (its update count included, which keys the
noise and the annealing). Whether a step warms up is read from the critic
optimizer's update count, which the run state saves, so a run killed during
or after the warm-up resumes where it was.
"""

import tensorflow as tf

from mltf.core import steps


def check(critic_warmup: int, n_critic: int) -> int:
    """``critic_warmup`` as an int: >= 0 and whole steps of ``n_critic``."""
    critic_warmup = int(critic_warmup)
    if critic_warmup < 0 or critic_warmup % n_critic:
        raise ValueError(f"critic_warmup must be a multiple of n_critic ({n_critic}) "
                         f">= 0, got {critic_warmup}")
    return critic_warmup


def warming_up(model):
    """Whether this step of ``model`` (a ``WGANGPClassifier``) is a warm-up
    step: fewer than ``critic_warmup`` critic updates done before it."""
    return model.critic_optimizer.iterations < model.critic_warmup


def step_index(model, warm):
    """The step's index for the noise seed: the generator update count, as
    without a warm-up, and -W .. -1 for the W warm-up steps, so every step
    draws its own noise."""
    done = model.generator_optimizer.iterations
    if not model.critic_warmup:
        return done
    critic = model.critic_optimizer.iterations
    warm_index = tf.math.floordiv(critic - model.critic_warmup, model.n_critic)
    return tf.where(warm, tf.cast(warm_index, done.dtype), done)


class HeldGenerator:
    """The generator-side variables of a step, put back after its update if
    the step warms up (module docstring); nothing is done when the model has
    no warm-up, so such a step is the same graph as before.

    Args:
      model: the ``WGANGPClassifier``.
      warm: the step's ``warming_up`` value.
    """

    def __init__(self, model, warm):
        self.warm = warm
        self.variables = []
        if model.critic_warmup:
            # Integer state (dropout seed counters) goes on: fresh masks later.
            self.variables = (list(model.generator.trainable_variables)
                              + [v for v in model.generator.non_trainable_variables
                                 if tf.as_dtype(v.dtype).is_floating]
                              + list(model.generator_optimizer.variables))
        self.before = [tf.identity(v.value) for v in self.variables]

    def restore(self):
        """After the generator update: the old values on a warm-up step."""
        if not self.variables:
            return
        values = [tf.where(self.warm, old, v.value) for old, v in zip(self.before,
                                                                        self.variables)]
        steps.assign_replicated(self.variables, values)
