"""Pretrained weights: the keras cache folder, the numpy reader of PyTorch
``.pth`` files and the EfficientNet-Lite conversion (which imports the
architecture; no architecture imports this package)."""
