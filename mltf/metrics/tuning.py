"""Decision thresholds tuned on a validation split (``mltf.train``'s
``threshold_mode``), used as ``threshold=`` by the other metrics."""

import numpy as np

from mltf.metrics.thresholds import DEFAULT_THRESHOLD
from mltf.metrics.validation import _check_inputs

THRESHOLD_MODES = ("f1", "fbeta", "precision", "recall", "global")


def check_threshold_mode(mode, beta=1.0, target=None) -> None:
    """Raises ``ValueError`` unless ``(mode, beta, target)`` is a valid
    choice for ``choose_thresholds``; cheap, so a run checks it before it
    trains."""
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    if mode == "fbeta" and not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"threshold mode 'fbeta' needs a finite beta > 0, got {beta!r}")
    if mode in ("precision", "recall"):
        if target is None:
            raise ValueError(f"threshold mode {mode!r} needs a target {mode} in (0, 1] "
                             "(mltf.train.threshold_target)")
        if not 0.0 < target <= 1.0:
            raise ValueError(f"threshold target must be in (0, 1], got {target!r}")


def _candidates(col, grid):
    """Class scores ``col``'s candidate thresholds, ascending (see ``choose_thresholds``)."""
    if grid is None:
        u = np.unique(col)
        grid = np.concatenate([(u[:-1] + u[1:]) / 2.0, u[:1]])
    return np.unique(np.append(grid, DEFAULT_THRESHOLD))


def _counts(col, pos, cand):
    """(TP, predicted positives) at each candidate, predictions ``col >= t``."""
    n_pred = col.size - np.searchsorted(np.sort(col), cand, side="left")
    tp = int(pos.sum()) - np.searchsorted(np.sort(col[pos]), cand, side="left")
    return tp, n_pred


def _pick(cand, *keys):
    """The candidate maximising ``keys`` in order, then the closest to 0.5,
    then the higher."""
    keep = np.ones(cand.size, dtype=bool)
    for key in (*keys, -np.abs(cand - DEFAULT_THRESHOLD), cand):
        keep &= key == key[keep].max()
    return float(cand[keep][0])


def _fbeta(tp, n_pred, n_pos, beta):
    b2 = beta * beta
    return (1.0 + b2) * tp / (b2 * n_pos + n_pred)  # = (1+b²)TP / ((1+b²)TP + b²FN + FP)


def _per_class(col, pos, cand, mode, beta, target):
    """(threshold, whether ``target`` was reached) of one class with positives."""
    tp, n_pred = _counts(col, pos, cand)
    if mode in ("f1", "fbeta"):
        return _pick(cand, _fbeta(tp, n_pred, pos.sum(), beta)), True
    precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
    recall = tp / pos.sum()
    # The constrained figure first, the other as the tie-break: the same recall
    # at a higher threshold can drop a negative and gain precision.
    first, second = (recall, precision) if mode == "precision" else (precision, recall)
    ok = (precision if mode == "precision" else recall) >= target
    if ok.any():
        return _pick(cand[ok], first[ok], second[ok]), True
    return _pick(cand, second, first), False


def choose_thresholds(y_true, scores, mode="f1", grid=None, beta=1.0, target=None):
    """``(thresholds, report)``: thresholds float64 ``[C]`` for use as
    ``threshold=`` elsewhere, chosen on the given (validation) split, and a
    JSON-ready dict saying how (``mode``, ``beta`` or ``target`` when they
    matter, and for the target modes ``unmet``: the classes, by index,
    that no candidate brought to the target).

    Args:
      y_true, scores: ``[N, C]`` labels and scores of the tuning split.
      mode: per class, predictions being ``score >= t``,

        * ``"f1"``: the F1-optimal threshold;
        * ``"fbeta"``: the F-beta-optimal threshold (``beta`` > 1 favours
          recall);
        * ``"precision"``: the threshold with the most recall among those
          whose precision is at least ``target`` (then the most precision);
          when none reaches it, the one of maximal precision (then recall),
          and the class is listed in ``unmet``;
        * ``"recall"``: the most precision among those whose recall is at
          least ``target`` (then the most recall); when none reaches it (only
          possible with a ``grid``), the one of maximal recall (then
          precision), listed in ``unmet``;
        * ``"global"``: one threshold for every class, maximising O-F1 (the
          micro F1, TP, FP, FN pooled over all classes).
      grid: None: the candidates of a class (of all scores for ``"global"``)
        are every distinct prediction set the scores allow, each represented
        by the midpoint between two consecutive distinct scores (the largest
        margin to both neighbours; the lowest score itself for "predict
        every image"), plus 0.5; a 1-D array: those values plus 0.5.
      beta: F-beta's beta (``"fbeta"`` only).
      target: the precision or recall to reach, in ``(0, 1]`` (those modes only).

    Among equally good candidates the one closest to 0.5 wins (an exact tie
    in distance goes to the higher threshold): the default stays unless the
    data clearly prefer another value; in ``"f1"`` and ``"fbeta"`` a class
    never scores lower on the tuning split than at 0.5. Precision with no
    predicted positive counts as 0. A class with no positive image gets 0.5
    in every per-class mode (nothing to tune on); ``"global"`` with no
    positive at all gives 0.5.
    """
    check_threshold_mode(mode, beta, target)
    y, s = _check_inputs(y_true, scores)
    c = s.shape[1]
    if grid is not None:
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
            raise ValueError("grid must be a non-empty 1-D array of finite "
                             f"thresholds, got {grid!r}")
    report = {"mode": mode, **({"beta": float(beta)} if mode == "fbeta" else {})}
    out = np.full(c, DEFAULT_THRESHOLD)
    if mode == "global":
        col, pos = s.ravel(), y.ravel()
        if pos.any():
            cand = _candidates(col, grid)
            tp, n_pred = _counts(col, pos, cand)
            out[:] = _pick(cand, _fbeta(tp, n_pred, pos.sum(), 1.0))
        return out, report
    unmet = []
    for j in np.flatnonzero(y.any(axis=0)):
        out[j], reached = _per_class(s[:, j], y[:, j], _candidates(s[:, j], grid), mode,
                                     beta, target)
        if not reached:
            unmet.append(int(j))
    if mode in ("precision", "recall"):
        report.update(target=float(target), unmet=unmet)
    return out, report


def tune_thresholds(y_true, scores, mode="f1", grid=None, beta=1.0, target=None):
    """The thresholds of ``choose_thresholds`` (same arguments) without its report."""
    return choose_thresholds(y_true, scores, mode, grid, beta, target)[0]
