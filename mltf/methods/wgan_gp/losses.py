"""The pure pieces of seed 000's losses: per-replica uniform draws, the
Gumbel-sigmoid relaxation and the gradient penalty (see ``model`` for the
update order that uses them)."""

import tensorflow as tf

from mltf.core import steps


def replica_uniform(shape, seed, dtype=tf.float32, minval=0.0, maxval=1.0):
    """Uniform draws for this replica's rows of a global batch: the draw is
    made for all replicas' rows with the same seed and this replica keeps its
    slice, so N replicas draw exactly what one device draws for the same
    examples (``shape[0]`` is the per-replica batch)."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas == 1:
        return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)
    rows = shape[0]
    full = tf.random.stateless_uniform(tf.concat([[rows * replicas], shape[1:]], 0),
                                       seed, minval, maxval, dtype=dtype)
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * rows
    return full[start:start + rows]


def gumbel_sigmoid(logits, seed, inverse_temperature: float = 0.9,
                   straight_through: bool = False):
    """Relaxed Bernoulli sample per label from logits (the Gumbel-softmax trick
    for a two-class variable): ``sigmoid((logits + L) * inverse_temperature)``
    with L = log u - log(1 - u), u ~ U(0, 1) (a logistic draw).

    The hard sample ``(logits + L) > 0`` is 1 with probability
    ``sigmoid(logits)`` exactly, at any temperature. ``straight_through``
    returns that hard sample with the relaxed sample's gradient.

    Args:
      logits: [..., C] logits of G.
      seed: a stateless seed, int tensor [2].
      inverse_temperature: 0.9 in seed 000 (no annealing).
      straight_through: hard forward, soft gradient.
    """
    logits = tf.convert_to_tensor(logits)
    eps = 1e-6
    u = replica_uniform(tf.shape(logits), seed, logits.dtype, eps, 1.0 - eps)
    noise = tf.math.log(u) - tf.math.log1p(-u)
    soft = tf.sigmoid((logits + noise) * inverse_temperature)
    if not straight_through:
        return soft
    hard = tf.cast(logits + noise > 0, soft.dtype)
    return soft + tf.stop_gradient(hard - soft)


def gradient_penalty(critic, real, fake, features, epsilon):
    """E[(||grad_y* D(y*, x)|| - 1)^2] for y* = e real + (1 - e) fake, as a
    per-replica-scaled mean; ``epsilon`` [b, 1] in [0, 1). The epsilon inside
    the square root keeps the norm's gradient finite at 0."""
    interpolated = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = critic(interpolated, features)
    grads = tape.gradient(scores, interpolated)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=-1) + 1e-12)
    return steps.per_replica_mean(tf.square(norms - 1.0))
