"""The import path of mltf before its method packages: ``mltf.retdm`` is
``mltf.methods.retdm``."""

from mltf.methods.retdm import *  # noqa: F401,F403
from mltf.methods.retdm import __all__  # noqa: F401
