"""Diagnostics only the demo dataset allows, because its truth is known
object by object (``mltf.data.sources.demo_source``): how often the model
finds a digit that is faint or half hidden, against a normal one, and how
often its predicted label pairs cross the themes that the generator's label
sets follow.

* ``recall_normal``, ``recall_faint``, ``recall_occluded``: of the digits
  drawn in each state (``NORMAL``, ``FAINT``: contrast 0.15-0.30,
  ``OCCLUDED``: 40-60% of the box hidden), the share whose label the model
  predicts for its scene (``score >= threshold``); NaN with no digit in that
  state. A model that uses label dependency can recover a faint digit from
  its theme mates; one that reads pixels only loses it.
* ``cross_theme_rate_pred`` / ``cross_theme_rate_true``: of all unordered
  label pairs ``{i, j}`` inside the predicted (true) sets, pooled over the
  images, the share whose two labels share no theme (``three`` and
  ``eight`` belong to two themes each; a pair inside either is within). The
  truth's rate comes from the rare outside label alone; NaN without a pair.
"""

import numpy as np

from mltf.data.sources import demo_source
from mltf.metrics.thresholds import DEFAULT_THRESHOLD, _binarize
from mltf.metrics.validation import _check_inputs, _check_threshold

_STATES = (("normal", demo_source.NORMAL), ("faint", demo_source.FAINT),
           ("occluded", demo_source.OCCLUDED))


def same_theme() -> np.ndarray:
    """bool ``[10, 10]``: labels ``i`` and ``j`` share a theme (diagonal True)."""
    index = {name: i for i, name in enumerate(demo_source.LABEL_NAMES)}
    out = np.eye(len(index), dtype=bool)
    for _, labels, _ in demo_source.THEMES:
        members = [index[n] for n in labels]
        out[np.ix_(members, members)] = True
    return out


def _cross_theme(sets, within):
    joint = sets.astype(np.int64).T @ sets.astype(np.int64)
    upper = np.triu(np.ones(within.shape, bool), k=1)
    pairs = int(joint[upper].sum())
    cross = int(joint[upper & ~within].sum())
    return (cross / pairs if pairs else float("nan")), pairs


def demo_diagnostics(y_true, scores, object_row, object_label, object_state,
                     threshold=DEFAULT_THRESHOLD) -> dict:
    """The demo diagnostics of one evaluation set (module docstring).

    Args:
      y_true: 0/1 ``[N, 10]``, the split's true label sets.
      scores: ``[N, 10]`` probabilities.
      object_row, object_label, object_state: ``[M]`` per drawn digit: the
        row of its scene in ``y_true``, its label and its state
        (``DemoScenes.object_state``).
      threshold: scalar or per-class ``[10]``; predicted iff ``score >= t``.

    Returns the five rates (floats) and ``num_normal``, ``num_faint``,
    ``num_occluded``, ``num_pairs_pred``, ``num_pairs_true`` (ints). Raises
    ``ValueError`` when a digit's label is not in its scene's true set (the
    objects belong to other scenes).
    """
    y, s = _check_inputs(y_true, scores)
    if y.shape[1] != len(demo_source.LABEL_NAMES):
        raise ValueError(f"the demo has {len(demo_source.LABEL_NAMES)} labels, "
                         f"y_true {y.shape[1]}")
    rows, labels, states = (np.asarray(a, np.int64)
                            for a in (object_row, object_label, object_state))
    if not y[rows, labels].all():
        raise ValueError("a digit's label is not in its scene's true set: the objects "
                         "do not match these images")
    pred = _binarize(s, _check_threshold(threshold, y.shape[1]), None)
    found = pred[rows, labels]
    out = {}
    for name, state in _STATES:
        mine = states == state
        out[f"recall_{name}"] = float(found[mine].mean()) if mine.any() else float("nan")
    within = same_theme()
    out["cross_theme_rate_pred"], pairs_pred = _cross_theme(pred, within)
    out["cross_theme_rate_true"], pairs_true = _cross_theme(y, within)
    out.update({f"num_{name}": int((states == state).sum()) for name, state in _STATES})
    out.update(num_pairs_pred=pairs_pred, num_pairs_true=pairs_true)
    return out
