"""Leaf utilities with no mltf imports: atomic file writes, image decoding,
size parsing, the command-line tools' TensorFlow start-up (``startup``).
Every other layer may use them."""
