"""Input checks shared by every metric: 2-D ``[N, C]`` arrays of equal shape,
at least one image and one label, ``y_true`` only 0/1, ``scores`` finite, a
threshold that is a scalar or one value per label. Each check raises
``ValueError`` naming the first offending entry, so a caller can fix its data
rather than guess."""

import numpy as np


def _as_2d(name, array):
    try:
        a = np.asarray(array)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name} must be a 2-D array [N, C]: {e}") from None
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, C] "
                         f"(images x labels), got shape {a.shape}")
    return a


def _check_scores(scores, name="scores"):
    """float64 copy of ``scores`` after checking it is 2-D, numeric, finite."""
    s = _as_2d(name, scores)
    if not (s.dtype == bool or np.issubdtype(s.dtype, np.integer)
            or np.issubdtype(s.dtype, np.floating)):
        raise ValueError(f"{name} must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if s.shape[0] == 0:
        raise ValueError(f"{name} has no image (N == 0): metrics are "
                         "undefined on an empty evaluation set")
    if s.shape[1] == 0:
        raise ValueError(f"{name} has no label (C == 0)")
    bad = ~np.isfinite(s)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite; {int(bad.sum())} entries are "
                         f"not, the first is {s[i, j]!r} at [{i}, {j}]")
    return s


def _check_inputs(y_true, scores):
    """(bool y_true, float64 scores) after every check of the module."""
    y = _as_2d("y_true", y_true)
    s = _as_2d("scores", scores)
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same shape [N, C], "
                         f"got {y.shape} and {s.shape}")
    s = _check_scores(s)
    if y.dtype == bool:
        return y.copy(), s
    if not (np.issubdtype(y.dtype, np.integer)
            or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"y_true must hold 0/1 values, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"y_true must hold only 0 and 1; {int(bad.sum())} "
                         f"entries do not, the first is {y[i, j]!r} at [{i}, {j}]")
    return y == 1, s


def _check_threshold(threshold, num_labels):
    """The threshold as a float64 vector [C]."""
    try:
        t = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number or a vector of "
                         f"{num_labels} numbers, got {threshold!r}") from None
    if t.ndim == 0:
        t = np.full(num_labels, float(t))
    elif t.shape != (num_labels,):
        raise ValueError(f"a per-class threshold must have shape ({num_labels},) "
                         f"(one per label), got {t.shape}")
    if np.isnan(t).any():
        raise ValueError("threshold must not be NaN")
    return t


def _check_top_k(top_k):
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    return int(top_k)
