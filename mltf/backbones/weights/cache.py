"""The folder where keras keeps downloaded weights, which mltf shares."""

import os
import tempfile


def keras_cache_dir() -> str:
    """The folder ``keras.utils.get_file(..., cache_subdir="models")`` uses:
    ``$KERAS_HOME`` or ``~/.keras``, else ``/tmp/.keras`` if not writable."""
    try:
        from keras.src.backend.config import keras_home  # what get_file uses
        base = keras_home()
    except ImportError:  # pragma: no cover - other Keras layouts
        base = os.environ.get("KERAS_HOME",
                              os.path.join(os.path.expanduser("~"), ".keras"))
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp")
                            else tempfile.gettempdir(), ".keras")
    return os.path.join(base, "models")
