"""``mltf.train.method = "wgan_gp"``: seed 000's classifier trained against a
conditional WGAN-gp critic.

The run starts from a BCE-trained generator: ``mltf.train.initial_model``,
or ``pretrain_epochs`` of BCE first (kept as ``pretrained.keras`` and reused
when the run is resumed). The critic is ``mltf.build_critic``, the model
``mltf.build_wgan``; each training step draws ``slots`` fresh batches, so the
input batch is ``slots`` times the configured one and carries mismatched label
sets (``MismatchedLabels``).
"""

import dataclasses
import os

import keras

import pipelines
from mltf import backbones
from mltf.methods.base import Method, Run, SettingsError
from mltf.methods.scoring import CriticSetScorer
from mltf.methods.wgan_gp.critic import build_critic, frozen_copy
from mltf.methods.wgan_gp.diagnostics import CriticDiagnostics
from mltf.methods.wgan_gp.mismatch import MismatchedLabels
from mltf.methods.wgan_gp.build import build_wgan

PRETRAINED = "pretrained.keras"
FEXT = ("generator", "imagenet")


class WGANGP(Method):
    """Seed 000. Options (``mltf.train.<option>``):

    Args:
      pretrain_epochs: with no ``initial_model``: BCE epochs first (log
        ``pretrain_log.csv``, model ``pretrained.keras``).
      critic_optimizer, generator_optimizer: the two optimizers (gin scopes:
        ``@critic/keras.optimizers.Adam()``); default Adam 1e-4 for both, as
        in seed 000.
      diagnostic_images: images of the selection split the critic's
        diagnostics (``mltf.methods.wgan_gp.diagnostics``: ``val_critic_*``,
        ``val_softness_auc``) are measured on each epoch; 0: none.
      fext: the critic's frozen feature extractor. ``"generator"``: a copy of
        the BCE-trained generator's backbone. ``"imagenet"`` (seed 000 sec.
        4.1, "the pretrained generator" without its output layer, fixed): a
        fresh backbone of the generator's registry name with its ImageNet
        weights and no embedding layer (gin-bound ``mltf.build_backbone``
        options still apply).
    """

    name = "wgan_gp"
    options = {"pretrain_epochs": 0, "critic_optimizer": None, "generator_optimizer": None,
               "fext": "generator", "diagnostic_images": 256}
    ema_refusal = ("its classifier is trained by generator_optimizer (after "
                   "mltf.train.optimizer's BCE pretraining), and the evaluation and "
                   "checkpoints would score the raw generator, not an average")
    # The adversarial game at a glance: the two players' losses and the critic's
    # Wasserstein estimate (whose collapse or blow-up is the thing to watch).
    key_metrics = ("generator_loss", "critic_loss", "wasserstein")

    def check(self, options, foreign=()):
        options = super().check(options, foreign)
        if options["fext"] not in FEXT:
            raise SettingsError(f"mltf.train.fext must be one of {', '.join(map(repr, FEXT))}, "
                                f"got {options['fext']!r}")
        for key in ("critic_optimizer", "generator_optimizer"):
            if getattr(options[key], "use_ema", False):
                raise SettingsError(f"mltf.train.{key}: use_ema is not supported with "
                                    f"method 'wgan_gp': {self.ema_refusal}")
        return options

    def initial_model(self, run: Run):
        """A resumed run whose BCE phase is done starts from its result."""
        path = os.path.join(run.model_dir, PRETRAINED)
        if run.initial_model is None and os.path.exists(path):
            return path
        return None

    def prepare(self, run: Run, classifier) -> None:
        epochs = run.options["pretrain_epochs"]
        if run.initial_model is None and epochs <= 0 and not run.resumed_phase:
            # Seed 000 trains the critic against a BCE-trained generator (sec. 4.1).
            raise SettingsError(
                "method 'wgan_gp' needs a BCE-trained generator: bind "
                "mltf.train.initial_model (a classifier's model.keras) or "
                "mltf.train.pretrain_epochs (BCE epochs first)")
        if run.options["fext"] == "imagenet":
            _imagenet_backbone_name(classifier)  # before a BCE phase, not after it
        super().prepare(run, classifier)
        if epochs > 0 and not run.resumed_phase:
            run.fit_phase(classifier, "pretrain", epochs)
            if run.chief:
                run.save_model(classifier, os.path.join(run.model_dir, PRETRAINED))

    def build(self, run: Run, classifier):
        with run.strategy.scope():
            critic = build_critic(run.info.num_labels)
            # The unconditional ablation has no fext: no ImageNet file to fetch.
            fext = _feature_extractor(run, classifier) if critic.conditional else None
            model = build_wgan(classifier, critic, fext)
            model.build((None,) + tuple(run.input_shape))
            default = keras.optimizers.Adam
            model.compile(
                critic_optimizer=run.in_scope(run.options["critic_optimizer"] or default(1e-4)),
                generator_optimizer=run.in_scope(run.options["generator_optimizer"]
                                                 or default(1e-4)),
                xla=run.xla)
        return model

    def adapt_input(self, run: Run, fit_model, config):
        # One step draws `slots` fresh batches (see model.py).
        transforms = ([MismatchedLabels(config.split, run.train_labels)]
                      if fit_model.negative_sampling else [])
        return dataclasses.replace(
            config, batch_size=config.batch_size * fit_model.slots,
            batch_transforms=tuple(config.batch_transforms) + tuple(transforms))

    def callbacks(self, run: Run, fit_model):
        if run.select_config is None or not run.options["diagnostic_images"]:
            return []
        config = dataclasses.replace(run.select_config, training=False, with_ids=False)
        return [CriticDiagnostics(pipelines.make_dataset(config, info=run.info),
                                  run.train_labels, run.options["diagnostic_images"])]

    def report(self, run: Run, fit_model):
        settings = {key: fit_model.get_config()[key] for key in (
            "n_critic", "alpha", "gp_weight", "inverse_temperature", "gumbel",
            "negative_sampling", "batches", "critic_samples", "critic_warmup")}
        return {"wgan_gp": {**settings, "fext": run.options["fext"]}}

    def set_scorer(self, run: Run, fit_model):
        """dep(Y, x) = D(Y, fext(x)), the trained critic."""
        fext = fit_model.feature_extractor if fit_model.critic.conditional else None
        return CriticSetScorer(fit_model.critic, fext, name="set_scorer")


def _imagenet_backbone_name(classifier) -> str:
    """The generator backbone's registry name, which must have ImageNet
    weights for ``fext = "imagenet"``."""
    name = classifier.backbone.name
    spec = backbones.BACKBONES.get(name)
    if spec is None or spec.imagenet_file is None:
        raise SettingsError(
            f"mltf.train.fext = 'imagenet' needs ImageNet weights of the generator's backbone, "
            f"and {name!r} has none (small_cnn, mlp and feature inputs never do): bind "
            "mltf.train.fext = 'generator' (a frozen copy of the BCE-trained backbone)")
    return name


def _feature_extractor(run: Run, classifier):
    """fext as ``mltf.train.fext`` says (see ``WGANGP``)."""
    if run.options["fext"] == "generator":
        return frozen_copy(classifier.backbone)
    # embedding_dim=None: only the output layer is removed, nothing new and random added.
    return backbones.build_backbone(
        name=_imagenet_backbone_name(classifier), input_shape=run.input_shape,
        weights="imagenet", trainable=False, embedding_dim=None)
