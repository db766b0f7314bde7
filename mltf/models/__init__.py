"""Task models on a backbone: the BCE multi-label classifier that both papers
start from and that every method trains (``mltf.methods``)."""

from mltf.models.classifier import (MultiLabelClassifier, OneOptimizerCompileConfig,
                                    in_global_policy)

__all__ = ["MultiLabelClassifier", "OneOptimizerCompileConfig", "in_global_policy"]
