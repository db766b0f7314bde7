"""Reading image files with one error type and one set of messages, shared by
the TFRecord writer (which skips and reports bad files) and by prediction
(which reports and goes on)."""

import re
from typing import Callable

import tensorflow as tf


class ImageReadError(ValueError):
    """A file that is missing, empty or not a decodable image; the message
    says which."""


def tf_error_text(error) -> str:
    """The useful part of a TF op error: its first line, without the
    ``{{function_node ...}}`` prefix or ``[Op:...]`` suffix."""
    text = (getattr(error, "message", "") or type(error).__name__).strip()
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return text.splitlines()[0] if text else type(error).__name__


def read_file(path: str) -> bytes:
    """The bytes of ``path``; ImageReadError when unreadable or empty."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageReadError(f"cannot read: {e.strerror or e}") from None
    if not data:
        raise ImageReadError("empty file")
    return data


def decode(data, decoder: Callable = None):
    """``decoder(data)`` (default: ``tf.io.decode_image`` to 3 channels);
    ImageReadError when the bytes are not a decodable image."""
    try:
        if decoder is None:
            return tf.io.decode_image(data, channels=3, expand_animations=False)
        return decoder(tf.constant(data))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise ImageReadError(f"not a decodable image: {tf_error_text(e)}") from None
