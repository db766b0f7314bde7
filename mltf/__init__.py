"""mltf: multi-label image classification that learns label dependency.

Keras 3 on TensorFlow. See README.md for the quick start.
"""

__version__ = "0.1.0"

try:  # Fail early with the fix, not deep inside a Keras import.
    import tensorflow as _tf  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "mltf needs TensorFlow 2.21. Install it with the package, e.g. "
        "`pip install -e \".[cpu]\"` (CPU) or `pip install -e \".[gpu]\"` "
        f"(CUDA). Original error: {e}"
    ) from e
