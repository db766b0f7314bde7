"""Leaf utilities with no mltf imports: atomic file writes, image decoding,
size parsing. Every other layer may use them."""
