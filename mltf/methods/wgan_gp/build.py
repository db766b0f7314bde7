"""``mltf.build_wgan``: the WGAN-gp model from gin."""

from typing import Optional

import gin

from mltf.methods.wgan_gp.model import WGANGPClassifier


@gin.configurable(module="mltf", denylist=["generator", "critic", "feature_extractor"])
def build_wgan(generator, critic, feature_extractor, n_critic: int = 3, alpha: float = 10.0,
               gp_weight: float = 10.0, inverse_temperature: float = 0.9,
               anneal_to: Optional[float] = None, anneal_steps: int = 0,
               straight_through: bool = False, gumbel: bool = True,
               negative_sampling: bool = True, seed: int = 0, batches: str = "fresh",
               critic_samples: str = "inference",
               critic_warmup: int = 0) -> WGANGPClassifier:
    """The WGAN-gp model from gin (``mltf.build_wgan.*``); see
    ``WGANGPClassifier`` for the arguments (seed 000's values are the
    defaults, but ``critic_samples``: the paper does not say, and
    ``"inference"`` keeps models saved before it loading unchanged;
    configs/paper_wgan.gin binds ``"train"``)."""
    return WGANGPClassifier(
        generator, critic, feature_extractor if critic.conditional else None,
        n_critic=n_critic, alpha=alpha, gp_weight=gp_weight,
        inverse_temperature=inverse_temperature, anneal_to=anneal_to,
        anneal_steps=anneal_steps, straight_through=straight_through, gumbel=gumbel,
        negative_sampling=negative_sampling, seed=seed, batches=batches,
        critic_samples=critic_samples, critic_warmup=critic_warmup, name="wgan_gp")
