"""Seed 000: the classifier (generator) trained against a conditional
WGAN-gp critic D(label set, image features).

Files by role: ``critic`` (D and fext), ``losses`` (pure functions: Gumbel
sigmoid, gradient penalty), ``model`` (the update order; ``build`` its gin
factory, ``warmup`` the critic warm-up), ``mismatch`` (the
mismatched label sets the input pipeline adds), ``method`` (the trainer's
hooks).
"""

from mltf.methods.wgan_gp.critic import LabelCritic, build_critic, frozen_copy
from mltf.methods.wgan_gp.losses import gradient_penalty, gumbel_sigmoid, replica_uniform
from mltf.methods.wgan_gp.method import WGANGP
from mltf.methods.wgan_gp.mismatch import MismatchSampler, MismatchedLabels, set_keys
from mltf.methods.wgan_gp.build import build_wgan
from mltf.methods.wgan_gp.model import WGANGPClassifier

METHOD = WGANGP()

__all__ = ["LabelCritic", "METHOD", "MismatchSampler", "MismatchedLabels", "WGANGP",
           "WGANGPClassifier", "build_critic", "build_wgan", "frozen_copy",
           "gradient_penalty", "gumbel_sigmoid", "replica_uniform", "set_keys"]
