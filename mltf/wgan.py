"""Label-dependency training with a conditional WGAN-gp critic (seed 000).

The classifier G (the *generator*, a ``MultiLabelClassifier``) is trained
against a critic D(y, x) that scores how real a label set y is for an image
x. D never sees pixels directly: z = fext(x) is the pretrained generator's
backbone, frozen (seed 000 sec. 4.1), and D is a feed-forward net on
(y, z): y and z each projected linearly to 256, concatenated, 8 dense layers
of 512 with leaky ReLU, one score.

One training step = one generator update = ``n_critic`` (3) critic updates,
then one generator update (seed 000 sec. 3.2-3.3):

  L_D = -E[D(y, x)] + 1/2 E[D(y^, x)] + 1/2 E[D(y', x)] + lambda GP
  GP  = E[(||grad_y* D(y*, x)|| - 1)^2],  y* = e y + (1 - e) y^,  e ~ U(0, 1)
  L_G = -E[D(y^, x)] + alpha BCE(y, G(x)),  y^ ~ GumbelSigmoid(G(x))

with lambda = alpha = 10. Each critic update draws three fresh batches:
matched pairs (x1, y1), generated pairs (x2, y^2 = G(x2)) and mismatched
pairs (x3, y'3) with y'3 the label set of another training image (drawn by
the input pipeline, ``pipelines.mismatch``). The gradient penalty
interpolates, for the generated batch, each image's real label set and its
generated one, so y* stays paired with its own image x2. The generator
update uses one more fresh batch.

Batch layout: the input pipeline yields batches of ``slots * b`` examples
(``slots = 3 n_critic + 1``, or ``2 n_critic + 1`` without negative
sampling); ``train_step`` cuts its (per-replica) batch into ``slots`` equal
chunks, in order: for each critic update matched, generated, (mismatched);
then the generator's chunk. Examples are shuffled i.i.d., so any partition
is as good as another, and under a MirroredStrategy each replica gets whole
chunks without any transpose of the images.

Cost: fext(x) runs once per drawn chunk and serves every term that needs
it (D on the generated pairs and the gradient penalty share fext(x2));
G runs forward only (inference mode, no BatchNorm update) on the generated
chunks of the critic updates, once per chunk, since G is not being updated
there; the unconditional ablation skips fext altogether. Fresh batches make
fext run on 10 chunks per step; ``batches="shared"`` (one chunk for
everything, fresh noise per critic update) is the cheap variant, measured
side by side in benchmarks/wgan_step.py.

Ablations of seed 000 Table 3, each changing exactly its term:
- ``negative_sampling=False`` (c): the mismatched term is dropped and the
  generated term weighted 1;
- ``conditional=False`` (d): D(y) ignores the image;
- ``gumbel=False`` (e): the continuous G(x) probabilities go to the critic.

Randomness (Gumbel noise, interpolation weights) comes from a
``keras.random.SeedGenerator``'s seed combined with the generator's update
count: draws are stateless functions of the two, so a step is reproducible
and a resumed run (BackupAndRestore restores the optimizers) continues the
same sequence.
"""

from typing import Optional

import gin
import keras
import numpy as np
import tensorflow as tf

from mltf import models
from mltf.core import steps
from pipelines.input import model_input


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


@keras.saving.register_keras_serializable(package="mltf")
class LabelCritic(keras.Model):
    """The critic D(y, z): label set and image features to one score.

    Args:
      num_labels: C.
      projection_dim: width of the linear projections of y and z (256).
      hidden_dim: width of the dense layers (512).
      depth: number of dense layers (8).
      negative_slope: leaky ReLU slope.
      conditional: False gives the unconditional ablation D(y).
      **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, num_labels: int, projection_dim: int = 256,
                 hidden_dim: int = 512, depth: int = 8, negative_slope: float = 0.2,
                 conditional: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.projection_dim = int(projection_dim)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.negative_slope = float(negative_slope)
        self.conditional = bool(conditional)
        self.label_projection = keras.layers.Dense(self.projection_dim, name="label_projection")
        self.feature_projection = (keras.layers.Dense(self.projection_dim, name="feature_projection")
                                   if self.conditional else None)
        self.hidden = [keras.layers.Dense(self.hidden_dim, name=f"dense_{i}")
                       for i in range(self.depth)]
        self.activation = keras.layers.LeakyReLU(self.negative_slope)
        self.score = keras.layers.Dense(1, dtype="float32", name="score")

    def call(self, labels, features=None):
        h = self.label_projection(labels)
        if self.conditional:
            if features is None:
                raise ValueError("a conditional critic needs image features")
            h = keras.ops.concatenate([h, self.feature_projection(features)], axis=-1)
        for layer in self.hidden:
            h = self.activation(layer(h))
        return keras.ops.squeeze(self.score(h), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"num_labels": self.num_labels, "projection_dim": self.projection_dim,
                       "hidden_dim": self.hidden_dim, "depth": self.depth,
                       "negative_slope": self.negative_slope,
                       "conditional": self.conditional})
        return config


def frozen_copy(backbone: keras.Model) -> keras.Model:
    """A frozen copy of a (pretrained) backbone: seed 000's fext."""
    clone = keras.models.clone_model(backbone)
    clone.set_weights(backbone.get_weights())
    clone.trainable = False
    return clone


@keras.saving.register_keras_serializable(package="mltf")
class WGANGPClassifier(steps.PrebuiltFit, keras.Model):
    """A classifier trained against a conditional WGAN-gp critic.

    ``call`` (and so ``predict``/``evaluate``) is the generator's: label
    probabilities. ``generator`` alone is what inference needs.

    Args:
      generator: a built ``MultiLabelClassifier`` (BCE-pretrained, as in the
        paper).
      critic: a ``LabelCritic``.
      feature_extractor: fext, a frozen backbone (``frozen_copy`` of the
        pretrained generator's); unused by an unconditional critic.
      n_critic: critic updates per generator update (3).
      alpha: weight of the BCE in the generator loss (10).
      gp_weight: lambda, the gradient-penalty scale (10).
      inverse_temperature: Gumbel-sigmoid inverse temperature (0.9).
      anneal_to: if set, the inverse temperature moves linearly from
        ``inverse_temperature`` to this value over ``anneal_steps`` steps.
      anneal_steps: see ``anneal_to``.
      straight_through: hard Gumbel samples with soft gradients.
      gumbel: False feeds the continuous probabilities (ablation e).
      negative_sampling: False drops the mismatched term (ablation c).
      seed: seed of the Gumbel noise and interpolation weights.
      batches: ``"fresh"`` (seed 000: three fresh batches per critic update
        and one for the generator) or ``"shared"`` (one batch per generator
        update serves all critic updates, with fresh Gumbel noise and
        interpolation weights each time, and the generator update: about 3x
        cheaper, not the paper's recipe).
      **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, generator: models.MultiLabelClassifier, critic: LabelCritic,
                 feature_extractor: Optional[keras.Model] = None, n_critic: int = 3,
                 alpha: float = 10.0, gp_weight: float = 10.0,
                 inverse_temperature: float = 0.9, anneal_to: Optional[float] = None,
                 anneal_steps: int = 0, straight_through: bool = False,
                 gumbel: bool = True, negative_sampling: bool = True, seed: int = 0,
                 batches: str = "fresh", **kwargs):
        super().__init__(**kwargs)
        if batches not in ("fresh", "shared"):
            raise ValueError(f"batches must be 'fresh' or 'shared', got {batches!r}")
        self.batches = batches
        if critic.conditional and feature_extractor is None:
            raise ValueError("a conditional critic needs feature_extractor (fext)")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.generator = generator
        self.critic = critic
        self.feature_extractor = feature_extractor
        if feature_extractor is not None:
            feature_extractor.trainable = False
        self.n_critic = int(n_critic)
        self.alpha = float(alpha)
        self.gp_weight = float(gp_weight)
        self.inverse_temperature = float(inverse_temperature)
        self.anneal_to = None if anneal_to is None else float(anneal_to)
        self.anneal_steps = int(anneal_steps)
        self.straight_through = bool(straight_through)
        self.gumbel = bool(gumbel)
        self.negative_sampling = bool(negative_sampling)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="wgan_seed")
        names = ["critic_loss", "d_real", "d_generated", "d_mismatched", "wasserstein",
                 "gradient_penalty", "generator_loss", "adversarial_loss", "bce",
                 "labels_per_image"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.xla = False
        self._critic_fn = self._generator_fn = None
        self._features_fn = self._logits_fn = None

    @property
    def slots(self) -> int:
        """Chunks of the per-step batch: 3 (or 2) per critic update + 1, or 1
        with ``batches="shared"``."""
        if self.batches == "shared":
            return 1
        return (3 if self.negative_sampling else 2) * self.n_critic + 1

    def build(self, input_shape):
        if not self.generator.built:
            self.generator.build(input_shape)
        features = (self.feature_extractor.compute_output_shape(input_shape)
                    if self.feature_extractor is not None else None)
        if self.feature_extractor is not None and not self.feature_extractor.built:
            self.feature_extractor.build(input_shape)
        self.critic(keras.ops.zeros((1, self.generator.num_labels)),
                    keras.ops.zeros((1,) + tuple(features[1:])) if features else None)
        self.built = True

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile(self, *, critic_optimizer, generator_optimizer, xla: bool = False,
                **kwargs):
        """Two optimizers, built here on their variables (a lazily built
        optimizer fails under MirroredStrategy).

        Args:
          critic_optimizer: the critic's optimizer (Adam 1e-4 in the paper).
          generator_optimizer: the generator's (Adam 1e-4).
          xla: XLA-compile the per-replica critic and generator steps.
          **kwargs: ``keras.Model.compile`` arguments (not loss/optimizer).
        """
        kwargs.pop("loss", None)
        kwargs.pop("optimizer", None)
        kwargs.pop("jit_compile", None)
        super().compile(optimizer=None, jit_compile=False, **kwargs)
        if not self.built:
            raise ValueError("build the model before compile")
        self.critic_optimizer = keras.optimizers.get(critic_optimizer)
        self.generator_optimizer = keras.optimizers.get(generator_optimizer)
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.xla = bool(xla)
        self._critic_fn = self._generator_fn = None
        self._features_fn = self._logits_fn = None

    def get_compile_config(self):
        if getattr(self, "critic_optimizer", None) is None:
            return None
        return {"critic_optimizer": keras.optimizers.serialize(self.critic_optimizer),
                "generator_optimizer": keras.optimizers.serialize(self.generator_optimizer),
                "xla": self.xla}

    def compile_from_config(self, config):
        """Re-compiles a loaded model with its two optimizers, so their state
        (and the generator-update counter that keys the noise) loads too."""
        config = dict(config)
        for key in ("critic_optimizer", "generator_optimizer"):
            config[key] = keras.optimizers.deserialize(config[key])
        self.compile(**config)

    @property
    def metrics(self):
        return list(self.trackers.values())

    # --- pieces -------------------------------------------------------------

    def _features(self, x):
        if not self.critic.conditional:
            return None
        return self.feature_extractor(x, training=False)

    def _temperature(self):
        if self.anneal_to is None or self.anneal_steps <= 0:
            return tf.constant(self.inverse_temperature, tf.float32)
        done = tf.minimum(tf.cast(self.generator_optimizer.iterations, tf.float32)
                          / float(self.anneal_steps), 1.0)
        return self.inverse_temperature + done * (self.anneal_to - self.inverse_temperature)

    def _sample(self, logits, seed, temperature):
        if not self.gumbel:
            return tf.sigmoid(logits)
        return gumbel_sigmoid(logits, seed, temperature, self.straight_through)

    def gradient_penalty(self, real, fake, features, epsilon):
        """E[(||grad_y* D(y*, x)|| - 1)^2] for y* = e real + (1 - e) fake, as a
        per-replica-scaled mean; ``epsilon`` [b, 1] in [0, 1)."""
        interpolated = epsilon * real + (1.0 - epsilon) * fake
        with tf.GradientTape() as tape:
            tape.watch(interpolated)
            scores = self.critic(interpolated, features)
        grads = tape.gradient(scores, interpolated)
        norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=-1) + 1e-12)
        return steps.per_replica_mean(tf.square(norms - 1.0))

    def _critic_step(self, y_real, z_real, logits_gen, y_gen, z_gen, y_mis, z_mis, seed,
                     temperature):
        """One critic update's gradients from precomputed pieces: features z of
        the matched, generated and mismatched chunks, and G's logits on the
        generated chunk (G is fixed during critic updates)."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        fake = tf.stop_gradient(self._sample(logits_gen, seeds[0], temperature))
        b = tf.shape(y_gen)[0]
        epsilon = replica_uniform(tf.stack([b, 1]), seeds[1], fake.dtype)
        with tf.GradientTape() as tape:
            d_real = self.critic(y_real, z_real)
            d_gen = self.critic(fake, z_gen)
            loss = -steps.per_replica_mean(d_real)
            if self.negative_sampling:
                d_mis = self.critic(y_mis, z_mis)
                loss += 0.5 * steps.per_replica_mean(d_gen) + 0.5 * steps.per_replica_mean(d_mis)
            else:
                d_mis = tf.zeros_like(d_gen)
                loss += steps.per_replica_mean(d_gen)
            # The penalty's own tape is nested inside the critic's tape.
            gp = self.gradient_penalty(y_gen, fake, z_gen, epsilon)
            loss += self.gp_weight * gp
        grads = tape.gradient(loss, self.critic.trainable_variables)
        stats = {"critic_loss": steps.unscaled(loss),
                 "d_real": tf.reduce_mean(d_real), "d_generated": tf.reduce_mean(d_gen),
                 "d_mismatched": tf.reduce_mean(d_mis),
                 "gradient_penalty": steps.unscaled(gp)}
        return grads, stats

    def _generator_logits(self, x):
        return self.generator(x, training=False, return_logits=True)

    def _generator_grads(self, trainable, non_trainable, x, y, z, seed, temperature):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            logits, new_non_trainable = self.generator.stateless_call(
                trainable, non_trainable, x, training=True, return_logits=True)
            fake = self._sample(logits, seed, temperature)
            adversarial = -steps.per_replica_mean(self.critic(fake, z))
            bce = self.generator.bce(y, logits)
            loss = adversarial + self.alpha * bce
            scaled = self.generator_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable)
        stats = {"generator_loss": steps.unscaled(loss),
                 "adversarial_loss": steps.unscaled(adversarial),
                 "bce": steps.unscaled(bce),
                 "labels_per_image": tf.reduce_mean(tf.reduce_sum(
                     tf.cast(logits >= 0.0, tf.float32), axis=-1))}
        return grads, new_non_trainable, stats

    # --- the step -------------------------------------------------------------

    def _roles(self, k):
        """Chunk indices (matched, generated, mismatched) of critic update k."""
        if self.batches == "shared":
            return 0, 0, 0
        if self.negative_sampling:
            return 3 * k, 3 * k + 1, 3 * k + 2
        return 2 * k, 2 * k + 1, None

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(x, dict) or ("mismatched_labels" not in x and self.negative_sampling):
            raise ValueError("WGANGPClassifier needs inputs {'images', "
                             "'mismatched_labels'} (InputConfig(with_mismatched=True))")
        images = model_input(x)
        mismatched = x.get("mismatched_labels", y)
        n = tf.shape(y)[0]
        b = n // self.slots
        tf.debugging.assert_equal(b * self.slots, n, message=(
            f"the per-replica batch must be {self.slots} chunks of equal size"))

        def chunk(t, i):
            return t[i * b:(i + 1) * b]

        if self._critic_fn is None:
            self._critic_fn = steps.replica_function(self._critic_step, self.xla)
            self._generator_fn = steps.replica_function(self._generator_grads, self.xla)
            self._features_fn = steps.replica_function(self._features, self.xla)
            self._logits_fn = steps.replica_function(self._generator_logits, self.xla)
        # fext and G's (fixed) logits once per drawn chunk, reused by every
        # term and every critic update that needs them.
        features, logits = {}, {}

        def z(i):
            if i not in features:
                features[i] = (self._features_fn(chunk(images, i))
                               if self.critic.conditional else None)
            return features[i]

        def g_logits(i):
            if i not in logits:
                logits[i] = self._logits_fn(chunk(images, i))
            return logits[i]

        # Keyed on the generator's update count, which BackupAndRestore brings
        # back, so a resumed run continues the same noise sequence.
        state = self.seed_generator.state.value
        step = tf.cast(self.generator_optimizer.iterations, state.dtype)
        state = tf.stack([state[0], state[1] + step])
        temperature = self._temperature()
        critic_stats = []
        for k in range(self.n_critic):
            real, gen, mis = self._roles(k)
            seed = tf.stack([state[0], state[1] * 64 + k])
            grads, stats = self._critic_fn(
                chunk(y, real), z(real), g_logits(gen), chunk(y, gen), z(gen),
                chunk(mismatched, mis) if mis is not None else None,
                z(mis) if mis is not None else None, seed, temperature)
            self.critic_optimizer.apply(grads, self.critic.trainable_variables)
            critic_stats.append(stats)
        last = self.slots - 1
        seed = tf.stack([state[0], state[1] * 64 + 63])
        grads, new_non_trainable, gen_stats = self._generator_fn(
            steps.variable_values(self.generator.trainable_variables),
            steps.variable_values(self.generator.non_trainable_variables),
            chunk(images, last), chunk(y, last), z(last), seed, temperature)
        steps.assign_synced(self.generator.non_trainable_variables, new_non_trainable)
        self.generator_optimizer.apply(grads, self.generator.trainable_variables)

        for key in ("critic_loss", "d_real", "d_generated", "d_mismatched", "gradient_penalty"):
            self.trackers[key].update_state(tf.add_n([s[key] for s in critic_stats])
                                            / float(self.n_critic))
        self.trackers["wasserstein"].update_state(
            tf.add_n([s["d_real"] - s["d_generated"] for s in critic_stats])
            / float(self.n_critic))
        for key, value in gen_stats.items():
            self.trackers[key].update_state(value)
        return steps.step_logs({m.name: m.result() for m in self.metrics})

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.generator(model_input(x), training=False, return_logits=True)
        self.trackers["bce"].update_state(steps.unscaled(self.generator.bce(y, logits)))
        self.trackers["labels_per_image"].update_state(tf.reduce_mean(tf.reduce_sum(
            tf.cast(logits >= 0.0, tf.float32), axis=-1)))
        return steps.step_logs({m.name: m.result() for m in self.metrics})

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "critic": keras.saving.serialize_keras_object(self.critic),
            "feature_extractor": (keras.saving.serialize_keras_object(self.feature_extractor)
                                  if self.feature_extractor is not None else None),
            "n_critic": self.n_critic, "alpha": self.alpha, "gp_weight": self.gp_weight,
            "inverse_temperature": self.inverse_temperature, "anneal_to": self.anneal_to,
            "anneal_steps": self.anneal_steps, "straight_through": self.straight_through,
            "gumbel": self.gumbel, "negative_sampling": self.negative_sampling,
            "seed": self.seed, "batches": self.batches})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "critic", "feature_extractor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@gin.configurable(module="mltf")
def build_critic(num_labels: int, projection_dim: int = 256, hidden_dim: int = 512,
                 depth: int = 8, negative_slope: float = 0.2,
                 conditional: bool = True) -> LabelCritic:
    """The critic from gin (``mltf.build_critic.*``); see ``LabelCritic``."""
    return LabelCritic(num_labels, projection_dim=projection_dim, hidden_dim=hidden_dim,
                       depth=depth, negative_slope=negative_slope,
                       conditional=conditional, name="critic")


@gin.configurable(module="mltf", denylist=["generator", "critic", "feature_extractor"])
def build_wgan(generator, critic, feature_extractor, n_critic: int = 3, alpha: float = 10.0,
               gp_weight: float = 10.0, inverse_temperature: float = 0.9,
               anneal_to: Optional[float] = None, anneal_steps: int = 0,
               straight_through: bool = False, gumbel: bool = True,
               negative_sampling: bool = True, seed: int = 0,
               batches: str = "fresh") -> "WGANGPClassifier":
    """The WGAN-gp model from gin (``mltf.build_wgan.*``); see
    ``WGANGPClassifier`` for the arguments (seed 000's values are the
    defaults)."""
    return WGANGPClassifier(
        generator, critic, feature_extractor if critic.conditional else None,
        n_critic=n_critic, alpha=alpha, gp_weight=gp_weight,
        inverse_temperature=inverse_temperature, anneal_to=anneal_to,
        anneal_steps=anneal_steps, straight_through=straight_through, gumbel=gumbel,
        negative_sampling=negative_sampling, seed=seed, batches=batches, name="wgan_gp")
