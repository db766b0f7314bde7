"""The WGAN-gp model of seed 000: the update order of one training step.

The classifier G (the *generator*, a ``MultiLabelClassifier``) is trained
against a critic D(y, x) that scores how real a label set y is for an image
x. D never sees pixels directly: z = fext(x) is a frozen backbone (seed 000
sec. 4.1: the ImageNet generator without its output layer; or a copy of the
BCE-trained generator's, ``mltf.train.fext``), and D is a feed-forward net on
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
the input pipeline, ``mltf.methods.wgan_gp.mismatch``). The gradient penalty
interpolates, for the generated batch, each image's real label set and its
generated one, so y* stays paired with its own image x2. The generator
update uses one more fresh batch.

Batch layout: the input pipeline yields ``slots`` chunks per step (see
``batch.py``): for each critic update matched, generated, (mismatched);
then the generator's chunk.

Cost: fext(x) runs once per drawn chunk and serves every term that needs
it (D on the generated pairs and the gradient penalty share fext(x2));
G runs forward only on the generated chunks of the critic updates, once per
chunk, with no BatchNorm update, since G is not being updated there (in
inference or training mode: ``critic_samples``); the unconditional ablation
skips fext altogether. Fresh batches make fext run on 10 chunks per step;
``batches="shared"`` (one chunk for everything, fresh noise per critic
update) is the cheap variant, measured side by side in
benchmarks/wgan_step.py.

Critic warm-up (``critic_warmup``, not in seed 000): that many critic
updates with G fixed come first (``warmup.py``).

Ablations of seed 000 Table 3, each changing exactly its term:
- ``negative_sampling=False`` (c): the mismatched term is dropped and the
  generated term weighted 1;
- ``conditional=False`` (d): D(y) ignores the image;
- ``gumbel=False`` (e): the continuous G(x) probabilities go to the critic.

Randomness (Gumbel noise, interpolation weights) comes from a
``keras.random.SeedGenerator``'s seed combined with the generator's update
count: draws are stateless functions of the two, so a step is reproducible
and a resumed run (``mltf.training.run_state`` restores the optimizers)
continues the same sequence.
"""

from typing import Optional

import keras
import tensorflow as tf

from mltf.core import steps
from mltf.methods.base import LabelDependencyModel
from mltf.methods.wgan_gp import losses, warmup
from mltf.methods.wgan_gp.batch import Chunks
from mltf.methods.wgan_gp.critic import LabelCritic
from mltf.models.classifier import MultiLabelClassifier, labels_per_image


@keras.saving.register_keras_serializable(package="mltf")
class WGANGPClassifier(LabelDependencyModel):
    """A classifier trained against a conditional WGAN-gp critic.

    ``call`` (and so ``predict``/``evaluate``) is the generator's: label
    probabilities. ``generator`` alone is what inference needs.

    Args:
      generator: a built ``MultiLabelClassifier`` (BCE-pretrained, as in the
        paper).
      critic: a ``LabelCritic``.
      feature_extractor: fext, a frozen backbone (``frozen_copy`` of the
        pretrained generator's, or the ImageNet one: ``WGANGP``'s ``fext``);
        unused by an unconditional critic.
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
      critic_samples: G's mode for the generated label sets the critic
        learns on. ``"inference"``: dropout off, BatchNorm on its moving
        statistics. ``"train"``: training mode, as in the generator update
        (dropout masks, BatchNorm on the chunk's batch statistics). The
        BatchNorm moving statistics these forwards compute are dropped: G is
        not updated there, so only the generator update moves them. The
        random-seed state goes on from chunk to chunk, so each chunk (and
        then the generator update) draws its own dropout masks.
      critic_warmup: critic updates with G fixed before the alternating
        updates, a multiple of ``n_critic`` (0: none, as in seed 000).
      **kwargs: ``keras.Model`` arguments.
    """

    classifier_key = "generator"
    submodel_keys = ("generator", "critic", "feature_extractor")
    tracker_names = ("critic_loss", "d_real", "d_generated", "d_mismatched", "wasserstein",
                     "gradient_penalty", "generator_loss", "adversarial_loss", "bce",
                     "labels_per_image")
    test_tracker_names = ("bce", "labels_per_image")

    def __init__(self, generator: MultiLabelClassifier, critic: LabelCritic,
                 feature_extractor: Optional[keras.Model] = None, n_critic: int = 3,
                 alpha: float = 10.0, gp_weight: float = 10.0,
                 inverse_temperature: float = 0.9, anneal_to: Optional[float] = None,
                 anneal_steps: int = 0, straight_through: bool = False,
                 gumbel: bool = True, negative_sampling: bool = True, seed: int = 0,
                 batches: str = "fresh", critic_samples: str = "inference",
                 critic_warmup: int = 0, **kwargs):
        super().__init__(**kwargs)
        if batches not in ("fresh", "shared"):
            raise ValueError(f"batches must be 'fresh' or 'shared', got {batches!r}")
        if critic_samples not in ("inference", "train"):
            raise ValueError(f"critic_samples must be 'inference' or 'train', "
                             f"got {critic_samples!r}")
        self.batches = batches
        self.critic_samples = critic_samples
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
        self.critic_warmup = warmup.check(critic_warmup, self.n_critic)
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
        kwargs.pop("optimizer", None)
        super().compile(optimizer=None, jit_compile=False, **self.compile_arguments(kwargs))
        if not self.built:
            raise ValueError("build the model before compile")
        self.critic_optimizer = self._loss_scaled(keras.optimizers.get(critic_optimizer))
        self.generator_optimizer = self._loss_scaled(keras.optimizers.get(generator_optimizer))
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.xla = bool(xla)
        self._critic_fn = self._generator_fn = None
        self._features_fn = self._logits_fn = None

    def _loss_scaled(self, optimizer):
        """Under ``mixed_float16`` a ``LossScaleOptimizer`` (what
        ``keras.Model.compile`` does for its one optimizer): fp16 gradients
        do not underflow, and a step with non-finite gradients is skipped."""
        if (self.dtype_policy.name == "mixed_float16"
                and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

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
        return losses.gumbel_sigmoid(logits, seed, temperature, self.straight_through)

    def gradient_penalty(self, real, fake, features, epsilon):
        """``losses.gradient_penalty`` of this model's critic."""
        return losses.gradient_penalty(self.critic, real, fake, features, epsilon)

    def _critic_step(self, y_real, z_real, logits_gen, y_gen, z_gen, y_mis, z_mis, seed,
                     temperature):
        """One critic update's gradients from precomputed pieces: features z of
        the matched, generated and mismatched chunks, and G's logits on the
        generated chunk (G is fixed during critic updates)."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        fake = tf.stop_gradient(self._sample(logits_gen, seeds[0], temperature))
        b = tf.shape(y_gen)[0]
        epsilon = losses.replica_uniform(tf.stack([b, 1]), seeds[1], fake.dtype)
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
            scaled = self.critic_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.critic.trainable_variables)
        stats = {"critic_loss": steps.unscaled(loss),
                 "d_real": tf.reduce_mean(d_real), "d_generated": tf.reduce_mean(d_gen),
                 "d_mismatched": tf.reduce_mean(d_mis),
                 "gradient_penalty": steps.unscaled(gp)}
        return grads, stats

    def _generator_logits(self, trainable, non_trainable, x):
        """G's logits on a generated chunk of a critic update and G's state
        after them (``critic_samples``)."""
        if self.critic_samples == "train":
            return self.generator.stateless_call(trainable, non_trainable, x, training=True,
                                                 return_logits=True)
        return self.generator(x, training=False, return_logits=True), non_trainable

    def _generator_grads(self, trainable, non_trainable, x, y, z, seed, temperature):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            logits, new_non_trainable = self.generator.stateless_call(
                trainable, non_trainable, x, training=True, return_logits=True)
            fake = self._sample(logits, seed, temperature)
            adversarial = -steps.per_replica_mean(self.critic(fake, z))
            bce = self.generator.classification_loss(y, logits)
            loss = adversarial + self.alpha * bce
            scaled = self.generator_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable)
        stats = {"generator_loss": steps.unscaled(loss),
                 "adversarial_loss": steps.unscaled(adversarial),
                 "bce": steps.unscaled(bce),
                 "labels_per_image": labels_per_image(logits)}
        return grads, new_non_trainable, stats

    # --- the step -------------------------------------------------------------

    def _roles(self, k):
        """Chunk indices (matched, generated, mismatched) of critic update k."""
        if self.batches == "shared":
            return 0, 0, 0
        if self.negative_sampling:
            return 3 * k, 3 * k + 1, 3 * k + 2
        return 2 * k, 2 * k + 1, None

    def _step_functions(self):
        if self._critic_fn is None:
            self._critic_fn = steps.replica_function(self._critic_step, self.xla)
            self._generator_fn = steps.replica_function(self._generator_grads, self.xla)
            self._features_fn = steps.replica_function(self._features, self.xla)
            self._logits_fn = steps.replica_function(self._generator_logits, self.xla)

    def _step_seed(self, warm):
        """Keyed on the optimizers' update counts (``warmup.step_index``),
        which the run state brings back, so a resumed run continues the same
        noise sequence."""
        state = self.seed_generator.state.value
        step = tf.cast(warmup.step_index(self, warm), state.dtype)
        return tf.stack([state[0], state[1] + step])

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._step_functions()
        batch = Chunks(self, x, y)
        warm = warmup.warming_up(self)
        seed, temperature = self._step_seed(warm), self._temperature()
        critic_stats = []
        for k in range(self.n_critic):
            real, gen, mis = self._roles(k)
            grads, stats = self._critic_fn(
                batch.labels(real), batch.features(real), batch.logits(gen),
                batch.labels(gen), batch.features(gen), batch.mismatched(mis),
                batch.features(mis), tf.stack([seed[0], seed[1] * 64 + k]), temperature)
            self.critic_optimizer.apply(grads, self.critic.trainable_variables)
            critic_stats.append(stats)
        last = self.slots - 1
        held = warmup.HeldGenerator(self, warm)
        grads, new_non_trainable, gen_stats = self._generator_fn(
            batch.generator_trainable, batch.generator_state,
            batch.images(last), batch.labels(last), batch.features(last),
            tf.stack([seed[0], seed[1] * 64 + 63]), temperature)
        steps.assign_synced(self.generator.non_trainable_variables, new_non_trainable)
        self.generator_optimizer.apply(grads, self.generator.trainable_variables)
        held.restore()
        self._track(critic_stats, gen_stats)
        return self.logs()

    def _track(self, critic_stats, gen_stats):
        """Critic terms averaged over the step's critic updates."""
        def mean(values):
            return tf.add_n(values) / float(self.n_critic)

        for key in ("critic_loss", "d_real", "d_generated", "d_mismatched", "gradient_penalty"):
            self.trackers[key].update_state(mean([s[key] for s in critic_stats]))
        self.trackers["wasserstein"].update_state(
            mean([s["d_real"] - s["d_generated"] for s in critic_stats]))
        for key, value in gen_stats.items():
            self.trackers[key].update_state(value)

    def get_config(self):
        config = super().get_config()
        config.update({
            "n_critic": self.n_critic, "alpha": self.alpha, "gp_weight": self.gp_weight,
            "inverse_temperature": self.inverse_temperature, "anneal_to": self.anneal_to,
            "anneal_steps": self.anneal_steps, "straight_through": self.straight_through,
            "gumbel": self.gumbel, "negative_sampling": self.negative_sampling,
            "seed": self.seed, "batches": self.batches,
            "critic_samples": self.critic_samples, "critic_warmup": self.critic_warmup})
        return config
