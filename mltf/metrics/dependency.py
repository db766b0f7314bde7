"""Dependency diagnostics: does a model's predicted label sets, taken as a
whole set of sets, look like the true ones? Numbers that see label
dependency where the per-label metrics cannot (a model that predicts each
label with the right marginal rate can still pair them wrongly).

``dependency_diagnostics(y_true, scores, train_labels)`` compares the
predicted sets (``scores >= threshold``, the rule of ``binarize``) with the
true sets of the same split:

* **co-occurrence fidelity**: ``P(j | i) = #(i and j) / #(i)``, the share of
  the sets holding label ``i`` that also hold ``j``, once over the predicted
  and once over the true sets; ``cooccurrence_gap`` is the mean of
  ``|P_pred(j | i) - P_true(j | i)|`` over the ordered pairs ``i != j``
  whose row ``i`` has support in the truth (true ``#(i) >= min_support``,
  default 1: every label that occurs). A row with no predicted ``i`` counts
  as 0 in the gap (label ``i`` is paired with nothing in the predictions),
  so a model that stops predicting a label cannot look faithful by leaving
  its row out; in the returned matrices such a row is NaN (undefined).
* **novel-set rate**: the share of images whose predicted set never occurs
  among the training split's label sets (``train_labels`` ``[M, C]``), the
  empty set counted as a set like any other (it is novel only if no
  training image is unlabelled); ``novel_set_rate_true`` is the same rate
  of the true sets, the reference: the evaluation split's own sets unseen
  in training. A model that only recombines seen sets sits below it; one
  that invents sets above it.
* **cardinality**: how many images have 0, 1, 2, ... labels, predicted and
  true (two histograms of equal length, up to the largest set on either
  side), and ``cardinality_tvd``, the total variation distance
  ``1/2 * sum_k |p_k - q_k|`` of the two normalised histograms (0: the same
  distribution of set sizes, 1: disjoint).

The four scalars (``DEPENDENCY_KEYS``) are floats in [0, 1], lower is
closer to the truth except the two novel-set rates, which are read against
each other. ``cooccurrence_gap`` is NaN when no pair has support (C = 1, or
no label occurs ``min_support`` times). These are not in ``compute_all``:
they need the training split's label sets.
"""

import numpy as np

from mltf.metrics.thresholds import DEFAULT_THRESHOLD, _binarize
from mltf.metrics.validation import _as_2d, _check_inputs, _check_threshold

DEPENDENCY_KEYS = ("cooccurrence_gap", "novel_set_rate_pred", "novel_set_rate_true",
                   "cardinality_tvd")

# metrics.json and the evaluate JSON keep the C x C matrices only up to this
# many labels (COCO's 80 fit; 1,000 labels would be a million numbers).
MAX_MATRIX_LABELS = 100


def cooccurrence_matrix(sets) -> np.ndarray:
    """``P(j | i)`` ``[C, C]`` of bool label sets ``[N, C]``: row ``i`` is
    ``#(i and j) / #(i)``, NaN when no set holds ``i``; the diagonal is 1 on
    every defined row."""
    a = np.asarray(sets, dtype=np.float64)
    joint = a.T @ a
    support = np.diag(joint)[:, None]
    out = np.full_like(joint, np.nan)
    np.divide(joint, support, out=out, where=support > 0)
    return out


def _novel_rate(sets, seen) -> float:
    return float(np.mean([row.tobytes() not in seen for row in sets]))


def _check_train_labels(train_labels, num_labels):
    t = _as_2d("train_labels", train_labels)
    if t.shape[1] != num_labels:
        raise ValueError(f"train_labels has {t.shape[1]} labels, y_true {num_labels}")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("train_labels must hold only 0 and 1")
    return t == 1


def dependency_diagnostics(y_true, scores, train_labels, threshold=DEFAULT_THRESHOLD,
                           min_support: int = 1) -> dict:
    """The dependency diagnostics of one evaluation set (module docstring).

    Args:
      y_true: 0/1 ``[N, C]``, the split's true label sets.
      scores: ``[N, C]`` probabilities.
      train_labels: 0/1 ``[M, C]``, the label sets of the training split (of
        the examples trained on); ``M = 0`` makes every set novel.
      threshold: scalar or per-class ``[C]``; predicted iff ``score >= t``.
      min_support: a row ``i`` enters the gap when the truth holds ``i`` at
        least this often.

    Returns a dict: the four ``DEPENDENCY_KEYS`` (floats), ``num_pairs`` (the
    pairs the gap averages over), ``min_support``, ``cardinality_pred`` and
    ``cardinality_true`` (lists of int, images with 0, 1, 2, ... labels) and
    ``cooccurrence_pred`` / ``cooccurrence_true`` (float ``[C, C]`` arrays).
    """
    y, s = _check_inputs(y_true, scores)
    c = y.shape[1]
    pred = _binarize(s, _check_threshold(threshold, c), None)
    train = _check_train_labels(train_labels, c)
    if isinstance(min_support, bool) or int(min_support) != min_support or min_support < 1:
        raise ValueError(f"min_support must be an integer >= 1, got {min_support!r}")
    co_pred, co_true = cooccurrence_matrix(pred), cooccurrence_matrix(y)
    pairs = (y.sum(axis=0) >= min_support)[:, None] & ~np.eye(c, dtype=bool)
    gap = np.abs(np.nan_to_num(co_pred, nan=0.0) - co_true)[pairs]
    seen = {row.tobytes() for row in train}
    size = 1 + int(max(pred.sum(axis=1).max(), y.sum(axis=1).max()))
    hist_pred = np.bincount(pred.sum(axis=1), minlength=size)
    hist_true = np.bincount(y.sum(axis=1), minlength=size)
    tvd = 0.5 * np.abs(hist_pred - hist_true).sum() / len(y)
    return {"cooccurrence_gap": float(gap.mean()) if gap.size else float("nan"),
            "novel_set_rate_pred": _novel_rate(pred, seen),
            "novel_set_rate_true": _novel_rate(y, seen),
            "cardinality_tvd": float(tvd),
            "num_pairs": int(pairs.sum()), "min_support": int(min_support),
            "cardinality_pred": [int(n) for n in hist_pred],
            "cardinality_true": [int(n) for n in hist_true],
            "cooccurrence_pred": co_pred, "cooccurrence_true": co_true}


def diagnostics_json(diagnostics: dict, max_labels: int = MAX_MATRIX_LABELS) -> dict:
    """``diagnostics`` for ``json.dump``: the matrices as nested lists (NaN
    for undefined rows), or left out when there are more than
    ``max_labels`` labels."""
    matrices = ("cooccurrence_pred", "cooccurrence_true")
    out = {k: v for k, v in diagnostics.items() if k not in matrices}
    if len(diagnostics["cooccurrence_pred"]) <= max_labels:
        for key in matrices:
            out[key] = diagnostics[key].tolist()
    return out
