"""The import path of mltf before its method packages: ``mltf.wgan`` is
``mltf.methods.wgan_gp`` (saved ``.keras`` files name their classes by the
registered ``mltf>...`` names, so either path loads them)."""

from mltf.methods.wgan_gp import *  # noqa: F401,F403
from mltf.methods.wgan_gp import __all__  # noqa: F401
