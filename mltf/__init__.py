"""mltf: multi-label image classification that learns label dependency.

Keras 3 on TensorFlow. See README.md for the quick start.
"""

import importlib.util as _util

__version__ = "0.1.0"

# Fail early with the fix, not deep inside a Keras import. Found, not imported:
# the command-line tools import TensorFlow themselves, after settling its
# start-up logging (mltf.utils.startup), and `python -m mltf.<tool>` runs this
# file first.
if _util.find_spec("tensorflow") is None:  # pragma: no cover - depends on the install
    raise ImportError(
        "mltf needs TensorFlow 2.21. Install it with the package, e.g. "
        "`pip install -e \".[cpu]\"` (CPU) or `pip install -e \".[gpu]\"` "
        "(CUDA): no module named 'tensorflow'")
