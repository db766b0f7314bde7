"""Dataset conversion: raw multi-label datasets to mltf's TFRecord format."""
