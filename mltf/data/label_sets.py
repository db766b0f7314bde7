"""Distinct label sets of a multi-hot matrix: what RETDM's kNN table and the
WGAN-gp mismatch sampler are built on."""

from typing import Tuple

import numpy as np


def distinct_label_sets(labels) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct sets [D, C] uint8 in lexicographic order, index of each
    example's set [N], counts [D]) of multi-hot ``labels`` [N, C] (> 0 is
    present)."""
    labels = (np.asarray(labels) > 0).astype(np.uint8)
    sets, inverse, counts = np.unique(labels, axis=0, return_inverse=True,
                                      return_counts=True)
    return sets, inverse.reshape(-1), counts
