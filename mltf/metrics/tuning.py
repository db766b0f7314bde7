"""Per-class decision thresholds tuned for F1 on a validation split
(``mltf.train.tune_thresholds``), used as ``threshold=`` by the other metrics."""

import numpy as np

from mltf.metrics.thresholds import DEFAULT_THRESHOLD
from mltf.metrics.validation import _check_inputs


def tune_thresholds(y_true, scores, grid=None):
    """Per-class thresholds, float64 ``[C]``, each maximising its class's F1
    on the given (validation) split, for use as ``threshold=`` elsewhere.

    Candidates for class c, predictions being ``score >= t``:

    * ``grid=None``: every distinct prediction set the class's scores allow,
      each represented by the midpoint between two consecutive distinct
      scores (the largest margin to both neighbours; the lowest score itself
      for "predict every image"), plus 0.5;
    * a 1-D ``grid`` of thresholds: those values plus 0.5.

    0.5 is always a candidate, so a tuned class never has a lower F1 on the
    tuning data than at 0.5. Among candidates with the maximal F1, the one
    closest to 0.5 wins (0.5 itself when it is optimal; an exact tie in
    distance goes to the higher threshold): the default stays unless the
    data clearly prefer another value. A class with no positive image gets
    0.5 (F1 is 0 at every threshold). F1 is computed exactly at the returned
    threshold.
    """
    y, s = _check_inputs(y_true, scores)
    n, c = s.shape
    if grid is not None:
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all():
            raise ValueError("grid must be a non-empty 1-D array of finite "
                             f"thresholds, got {grid!r}")
    out = np.full(c, DEFAULT_THRESHOLD)
    for j in range(c):
        pos = y[:, j]
        n_pos = int(pos.sum())
        if n_pos == 0:
            continue
        col = s[:, j]
        if grid is None:
            u = np.unique(col)
            cand = np.concatenate([(u[:-1] + u[1:]) / 2.0, u[:1]])
        else:
            cand = g
        cand = np.unique(np.append(cand, DEFAULT_THRESHOLD))
        n_pred = n - np.searchsorted(np.sort(col), cand, side="left")
        tp = n_pos - np.searchsorted(np.sort(col[pos]), cand, side="left")
        f1 = 2.0 * tp / (n_pred + n_pos)  # = 2TP / (2TP + FP + FN)
        best = cand[f1 == f1.max()]
        dist = np.abs(best - DEFAULT_THRESHOLD)
        out[j] = best[dist == dist.min()].max()
    return out
