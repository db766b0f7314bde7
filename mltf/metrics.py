"""Every evaluation metric of mltf, in plain numpy, over a whole evaluation set.

All metrics take ``y_true`` ``[N, C]`` (0/1 ground truth, ``N`` images,
``C`` labels) and ``scores`` ``[N, C]`` (the model's probabilities in
``[0, 1]``) for the **whole** evaluation set at once. Nothing here is a
streaming or per-batch metric: averaging a ratio (precision, AP, ...) over
batches gives a different, batch-size-dependent number, so callers collect
the scores of every image first and call these functions once.

``compute_all(y_true, scores, threshold=0.5)`` returns this flat dict; the
keys are stable (``RESULT_KEYS`` lists them in order), counts are Python
``int`` and every metric is a Python ``float``, so the dict goes straight to
``json.dump``:

========================================  ==================================================
key                                       meaning
========================================  ==================================================
``num_examples``                          N, images in the evaluation set (int)
``num_labels``                            C, labels (int)
``num_labels_with_positives``             labels with at least one positive image: the
                                          classes ``mAP`` averages over (int)
``num_examples_with_labels``              images with at least one relevant label: the
                                          images ``one_error`` and ``coverage`` average
                                          over (int)
``CP``, ``CR``                            per-class precision / recall at the threshold,
                                          averaged over **all** C classes (macro)
``CF1``                                   ``2*CP*CR / (CP+CR)`` (not the mean of
                                          per-class F1)
``OP``, ``OR``                            overall (micro) precision / recall at the
                                          threshold: TP, FP, FN pooled over all N*C
                                          entries
``OF1``                                   ``2*OP*OR / (OP+OR)``
``CP_top3``, ``CR_top3``, ``CF1_top3``    ``CP``, ``CR``, ``CF1`` where each image may
                                          predict only its 3 highest-scored labels
                                          (each still has to pass the threshold)
``OP_top3``, ``OR_top3``, ``OF1_top3``    ``OP``, ``OR``, ``OF1`` with the same top-3
                                          predictions
``mAP``                                   mean over the classes with a positive of the
                                          per-class non-interpolated average precision
                                          (sklearn's ``average_precision_score``)
``hamming_loss``                          fraction of the N*C label entries predicted
                                          wrongly at the threshold (lower is better)
``ranking_loss``                          sklearn's ``label_ranking_loss``: fraction of
                                          (relevant, irrelevant) label pairs ordered
                                          wrongly (lower is better)
``one_error``                             fraction of images whose top-scored label is
                                          not relevant (lower is better)
``coverage``                              MULAN coverage: how far down the ranking one
                                          must go to cover all relevant labels (rank of
                                          the lowest-ranked relevant label minus 1;
                                          lower is better)
``avg_precision``                         label-ranking average precision (sklearn's
                                          ``label_ranking_average_precision_score``)
========================================  ==================================================

Metric values are fractions in [0, 1] (not percent), except ``coverage``, a
number of labels in [0, C-1]; precision, recall, F1, ``mAP`` and
``avg_precision`` are better higher, the other four lower.

The last five are the criteria of the RETDM paper (MULAN's names: Hamming
loss, ranking loss, one-error, coverage, average precision).

Conventions (each chosen for a reason given in the function's docstring):

* **Prediction**: label ``j`` of image ``i`` is predicted positive iff
  ``scores[i, j] >= threshold[j]`` (``>=``, as ML-GCN's ``scores >= 0`` on
  logits, i.e. probability ``>= 0.5``). The threshold is a scalar or a
  per-class vector ``[C]`` (e.g. from ``tune_thresholds``).
* **Zero divisions**: a class with no predicted positive has precision 0, a
  class with no positive image has recall 0, and both classes still count in
  the C-P / C-R averages over all C classes (ML-GCN divides by ``n_class``).
  O-P is 0 when nothing is predicted, O-R is 0 when there is no positive,
  any F1 is 0 when precision + recall is 0.
* **Top-3**: the 3 highest scores of each image; a tie at the cut is broken
  towards the lower label index (stable sort), so at most 3 labels per image
  are ever predicted. With C <= 3 it equals the plain threshold metrics.
* **Ties in rankings** are pessimistic everywhere, as in scikit-learn: a
  label's rank is the number of labels scored ``>=`` it (coverage,
  ``avg_precision``; per-class AP likewise counts every image tied with a
  positive as ranked above it), a tied (relevant, irrelevant) pair counts as mis-ordered
  (ranking loss), and one-error counts an image as wrong when any label tied
  for the top score is irrelevant. A constant scorer therefore never looks
  good.
* **Images with no relevant label**: ``one_error`` and ``coverage`` skip them
  (the measures are undefined there); ``ranking_loss`` counts them as 0 and
  ``avg_precision`` as 1, exactly as scikit-learn does (images whose labels
  are all relevant likewise).
* **Undefined results**: ``mAP`` is NaN when no class has a positive,
  ``one_error`` and ``coverage`` are NaN when no image has a relevant label
  (``json.dump`` writes NaN; the two ``num_*_with_*`` counts say why).

Inputs are validated (2-D, equal shapes, at least one image and one label,
``y_true`` only 0/1, ``scores`` finite); anything else raises ``ValueError``.
"""

import math

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD",
    "TOP_K",
    "RESULT_KEYS",
    "binarize",
    "precision_recall_f1",
    "per_class_metrics",
    "average_precision",
    "mean_average_precision",
    "hamming_loss",
    "ranking_loss",
    "one_error",
    "coverage",
    "label_ranking_average_precision",
    "tune_thresholds",
    "compute_all",
    "format_table",
]

DEFAULT_THRESHOLD = 0.5
TOP_K = 3

_PRF_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")

RESULT_KEYS = (
    ("num_examples", "num_labels", "num_labels_with_positives",
     "num_examples_with_labels")
    + _PRF_KEYS
    + tuple(f"{k}_top{TOP_K}" for k in _PRF_KEYS)
    + ("mAP", "hamming_loss", "ranking_loss", "one_error", "coverage",
       "avg_precision")
)

# Rows per chunk in the ranking computations keep the [rows, C] temporaries
# near 2**22 entries (a few tens of MB), whatever N is.
_CHUNK_ENTRIES = 1 << 22


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Threshold (bipartition) metrics
# --------------------------------------------------------------------------

def _top_k_mask(s, k):
    """True at the k highest scores of each row; ties towards the lower index."""
    n, c = s.shape
    if k >= c:
        return np.ones((n, c), dtype=bool)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n, c), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _binarize(s, t, top_k):
    pred = s >= t[None, :]
    if top_k is not None:
        pred &= _top_k_mask(s, top_k)
    return pred


def binarize(scores, threshold=DEFAULT_THRESHOLD, top_k=None):
    """Predicted labels, bool ``[N, C]``.

    ``scores[i, j] >= threshold[j]`` (``>=``: a score exactly at the
    threshold is predicted, as ML-GCN's ``>= 0`` on logits). ``threshold`` is
    a scalar or a per-class vector ``[C]``. With ``top_k``, only the
    ``top_k`` highest-scored labels of each image may be predicted (each
    still has to pass its threshold); ties at the cut go to the lower label
    index, so no image ever predicts more than ``top_k`` labels.
    """
    s = _check_scores(scores)
    return _binarize(s, _check_threshold(threshold, s.shape[1]), _check_top_k(top_k))


def _f1(p, r):
    return 2.0 * p * r / (p + r) if p + r > 0 else 0.0


def _safe_div(num, den):
    """num / den elementwise, 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _counts(y, pred):
    """Per-class (correct, predicted, true) counts, int64 [C] each."""
    return ((y & pred).sum(axis=0), pred.sum(axis=0), y.sum(axis=0))


def _prf_from_counts(tp, n_pred, n_true):
    cp = float(_safe_div(tp, n_pred).mean())
    cr = float(_safe_div(tp, n_true).mean())
    op = float(_safe_div(tp.sum(), n_pred.sum()))
    o_r = float(_safe_div(tp.sum(), n_true.sum()))
    return {"CP": cp, "CR": cr, "CF1": _f1(cp, cr),
            "OP": op, "OR": o_r, "OF1": _f1(op, o_r)}


def precision_recall_f1(y_true, scores, threshold=DEFAULT_THRESHOLD, top_k=None):
    """C-P, C-R, C-F1, O-P, O-R, O-F1 (dict with keys ``CP CR CF1 OP OR OF1``).

    Predictions as in ``binarize`` (``>= threshold``, optional ``top_k``).

    * ``CP`` / ``CR``: per-class precision ``TP_c / predicted_c`` and recall
      ``TP_c / positives_c`` averaged over **all** C classes. A class with no
      prediction has precision 0 and a class with no positive has recall 0,
      and both stay in the average: that is what ML-GCN's evaluation does
      (it divides by ``n_class``) and what sklearn's
      ``precision_score(average='macro', zero_division=0)`` does, so numbers
      compare with the papers' tables. (ML-GCN's own code gives NaN for a
      class with no positive; COCO and VOC test sets have none.)
    * ``CF1 = 2*CP*CR / (CP+CR)``: the harmonic mean of the averages, the
      convention of ML-GCN and the tables it is compared with. It is **not**
      the mean of per-class F1 (sklearn's macro F1); ``per_class_metrics``
      gives per-class F1 for that.
    * ``OP`` / ``OR``: TP, predictions and positives pooled over all entries
      (micro); ``OF1 = 2*OP*OR / (OP+OR)`` (= ``2*TP / (predicted +
      positives)``).
    """
    y, s = _check_inputs(y_true, scores)
    pred = _binarize(s, _check_threshold(threshold, s.shape[1]), _check_top_k(top_k))
    return _prf_from_counts(*_counts(y, pred))


def per_class_metrics(y_true, scores, threshold=DEFAULT_THRESHOLD, top_k=None):
    """Per-class numbers, a dict of numpy arrays ``[C]``.

    ``precision``, ``recall``, ``f1`` (``2PR/(P+R)``, 0 when P+R=0) at the
    threshold (zero-division conventions of ``precision_recall_f1``);
    ``num_correct`` (TP), ``num_predicted``, ``num_positives`` (int); ``ap``
    (average precision, NaN for a class with no positive, see
    ``average_precision``).
    """
    y, s = _check_inputs(y_true, scores)
    pred = _binarize(s, _check_threshold(threshold, s.shape[1]), _check_top_k(top_k))
    tp, n_pred, n_true = _counts(y, pred)
    p = _safe_div(tp, n_pred)
    r = _safe_div(tp, n_true)
    return {"precision": p, "recall": r, "f1": _safe_div(2 * p * r, p + r),
            "num_correct": tp, "num_predicted": n_pred, "num_positives": n_true,
            "ap": _average_precision(y, s)}


def _hamming(y, pred):
    return float(np.mean(y != pred))


def hamming_loss(y_true, scores, threshold=DEFAULT_THRESHOLD):
    """Fraction of the N*C label entries predicted wrongly at the threshold.

    Predictions as in ``binarize`` (no top-k); equals sklearn's
    ``hamming_loss(y_true, scores >= threshold)`` and MULAN's Hamming loss.
    """
    y, s = _check_inputs(y_true, scores)
    return _hamming(y, _binarize(s, _check_threshold(threshold, s.shape[1]), None))


# --------------------------------------------------------------------------
# Ranking metrics
# --------------------------------------------------------------------------

def _chunks(num_rows, num_cols):
    step = max(1, _CHUNK_ENTRIES // max(num_cols, 1))
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


def _ge_counts(y, s):
    """For every entry of each row: (how many entries of its row score >= it,
    how many positive entries of its row score >= it), int64 [R, K] each.

    The first is the pessimistic (tie -> worst) 1-based rank. Computed by
    sorting each row once: within a run of tied scores every entry gets the
    position of the run's last element.
    """
    r, k = s.shape
    order = np.argsort(-s, axis=1, kind="stable")
    v = np.take_along_axis(s, order, axis=1)
    cum_pos = np.cumsum(np.take_along_axis(y, order, axis=1), axis=1)
    is_last = np.ones((r, k), dtype=bool)
    is_last[:, :-1] = v[:, :-1] != v[:, 1:]
    last = np.where(is_last, np.arange(k)[None, :], k)
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    n_ge = np.empty((r, k), dtype=np.int64)
    pos_ge = np.empty((r, k), dtype=np.int64)
    np.put_along_axis(n_ge, order, last + 1, axis=1)
    np.put_along_axis(pos_ge, order, np.take_along_axis(cum_pos, last, axis=1), axis=1)
    return n_ge, pos_ge


def _average_precision(y, s):
    """Per-class AP [C] on validated inputs; NaN where a class has no positive."""
    n, c = s.shape
    yt, st = y.T, s.T
    ap = np.full(c, np.nan)
    for rows in _chunks(c, n):
        yc = yt[rows]
        n_ge, pos_ge = _ge_counts(yc, st[rows])
        n_pos = yc.sum(axis=1)
        prec_sum = np.where(yc, pos_ge / n_ge, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap[rows] = np.where(n_pos > 0, prec_sum / n_pos, np.nan)
    return ap


def average_precision(y_true, scores):
    """Per-class non-interpolated average precision, float64 ``[C]``.

    sklearn's ``average_precision_score(y_true[:, c], scores[:, c])``:
    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds,
    i.e. the mean, over the class's positive images, of the precision among
    the images scored ``>=`` that positive (tied images enter together, so
    ties are pessimistic). No interpolation (unlike VOC2007's 11-point AP).
    A class with no positive image gets NaN (AP is undefined; sklearn would
    warn and return 0).
    """
    y, s = _check_inputs(y_true, scores)
    return _average_precision(y, s)


def _nan_mean(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def mean_average_precision(y_true, scores, return_per_class=False):
    """mAP: mean of ``average_precision`` over the classes with a positive.

    Classes with no positive image are left out (their AP is undefined),
    as in ML-GCN's and the VOC/COCO evaluations where every class has
    positives; the result is NaN when no class has one. With
    ``return_per_class=True`` returns ``(mAP, per_class_ap)``.
    """
    y, s = _check_inputs(y_true, scores)
    ap = _average_precision(y, s)
    m = _nan_mean(ap)
    return (m, ap) if return_per_class else m


def _example_based(y, s):
    """Per-image ranking criteria on validated inputs, float64 [N] each:
    ranking loss, label-ranking AP, coverage (NaN when no relevant label) and
    one-error (NaN when no relevant label)."""
    n, c = s.shape
    out = {name: np.empty(n) for name in ("rl", "lrap", "coverage", "one_error")}
    for rows in _chunks(n, c):
        yc, sc = y[rows], s[rows]
        n_ge, pos_ge = _ge_counts(yc, sc)
        n_rel = yc.sum(axis=1)
        n_irr = c - n_rel
        has = n_rel > 0
        degenerate = (n_rel == 0) | (n_irr == 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Ranking loss: for each relevant label, the irrelevant ones
            # scored >= it (ties count as mis-ordered), over all pairs.
            wrong = np.where(yc, n_ge - pos_ge, 0).sum(axis=1)
            out["rl"][rows] = np.where(degenerate, 0.0, wrong / (n_rel * n_irr))
            # LRAP: mean over relevant labels of
            # |relevant scored >= it| / |labels scored >= it|.
            prec = np.where(yc, pos_ge / n_ge, 0.0).sum(axis=1)
            out["lrap"][rows] = np.where(degenerate, 1.0, prec / n_rel)
        # Coverage: pessimistic rank of the lowest-scored relevant label - 1.
        worst = np.where(yc, n_ge, 0).max(axis=1)
        out["coverage"][rows] = np.where(has, worst - 1.0, np.nan)
        # One-error: any label tied for the top score is irrelevant.
        top = sc == sc.max(axis=1, keepdims=True)
        miss = (top & ~yc).any(axis=1)
        out["one_error"][rows] = np.where(has, miss.astype(np.float64), np.nan)
    return out


def ranking_loss(y_true, scores):
    """Ranking loss, sklearn's ``label_ranking_loss``.

    Per image: the fraction of (relevant, irrelevant) label pairs whose
    irrelevant label is scored ``>=`` the relevant one (a tie counts as
    mis-ordered), averaged over **all** images. Images with no relevant or no
    irrelevant label have no pair and count as 0, as in sklearn. (MULAN
    instead leaves them out of the average; the two agree when every image
    has between 1 and C-1 labels.)
    """
    y, s = _check_inputs(y_true, scores)
    return float(_example_based(y, s)["rl"].mean())


def one_error(y_true, scores):
    """One-error: fraction of images whose top-scored label is not relevant.

    Averaged over the images with at least one relevant label; the others
    are skipped because no prediction can be right there (MULAN's code
    counts them as errors, which would penalise a model for unlabelled
    images). Ties at the top are pessimistic, like sklearn's ranking
    metrics: an image counts as an error when any label sharing the top score
    is irrelevant. NaN when no image has a relevant label.
    """
    y, s = _check_inputs(y_true, scores)
    return _nan_mean(_example_based(y, s)["one_error"])


def coverage(y_true, scores):
    """Coverage (MULAN convention): how many steps down the ranking one must
    go to cover every relevant label.

    Per image: the rank of the lowest-ranked relevant label minus 1, ranks
    from 1 = highest score. Ties are pessimistic: a label's rank is the number
    of labels scored ``>=`` it. So for an image with labels this is sklearn's
    ``coverage_error - 1``. Averaged over the images with at least one
    relevant label: coverage is undefined without one, and counting such an
    image as 0, as sklearn's ``coverage_error`` and MULAN's code do, would
    reward unlabelled images. NaN when no image has a relevant label.
    """
    y, s = _check_inputs(y_true, scores)
    return _nan_mean(_example_based(y, s)["coverage"])


def label_ranking_average_precision(y_true, scores):
    """Label-ranking average precision, sklearn's
    ``label_ranking_average_precision_score`` (MULAN's "average precision").

    Per image: the mean over its relevant labels ``j`` of
    ``|relevant labels scored >= s_j| / |labels scored >= s_j|`` (ties
    pessimistic), averaged over **all** images; images with no relevant label,
    or with every label relevant, score 1, as in sklearn (MULAN skips images
    with no relevant label).
    """
    y, s = _check_inputs(y_true, scores)
    return float(_example_based(y, s)["lrap"].mean())


# --------------------------------------------------------------------------
# Per-class threshold tuning
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------

def compute_all(y_true, scores, threshold=DEFAULT_THRESHOLD) -> dict:
    """Every metric of the module on one evaluation set, as the flat dict
    documented in the module docstring (keys in ``RESULT_KEYS`` order).

    ``threshold`` (scalar or per-class ``[C]``) applies to the C-/O- metrics,
    their top-3 variants and the Hamming loss; mAP and the ranking criteria
    use the scores only.
    """
    y, s = _check_inputs(y_true, scores)
    n, c = s.shape
    t = _check_threshold(threshold, c)
    pred = _binarize(s, t, None)
    pred_top = pred & _top_k_mask(s, TOP_K)
    ap = _average_precision(y, s)
    ex = _example_based(y, s)
    res = {"num_examples": int(n), "num_labels": int(c),
           "num_labels_with_positives": int((y.sum(axis=0) > 0).sum()),
           "num_examples_with_labels": int((y.sum(axis=1) > 0).sum())}
    res.update(_prf_from_counts(*_counts(y, pred)))
    res.update({f"{k}_top{TOP_K}": v
                for k, v in _prf_from_counts(*_counts(y, pred_top)).items()})
    res.update({"mAP": _nan_mean(ap),
                "hamming_loss": _hamming(y, pred),
                "ranking_loss": float(ex["rl"].mean()),
                "one_error": _nan_mean(ex["one_error"]),
                "coverage": _nan_mean(ex["coverage"]),
                "avg_precision": float(ex["lrap"].mean())})
    assert tuple(res) == RESULT_KEYS
    return res


def _fmt(results, key, percent):
    v = results.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100.0 * v:.2f}" if percent else f"{v:.4f}"


def format_table(results: dict) -> str:
    """A human-readable table of a ``compute_all`` dict, for stdout.

    Threshold metrics, their top-3 variant and mAP in percent (as in the
    papers' tables); the RETDM/MULAN criteria as raw numbers. Missing keys
    and NaN print as ``n/a``.
    """
    cols = ["C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1"]
    width = 8

    def row(label, keys, percent=True):
        return f"  {label:<18}" + "".join(
            f"{_fmt(results, k, percent):>{width}}" for k in keys)

    head = f"  {'':<18}" + "".join(f"{h:>{width}}" for h in cols)
    lines = [f"Evaluation on {results.get('num_examples', '?')} images, "
             f"{results.get('num_labels', '?')} labels",
             "Threshold metrics (%), predicted = score >= threshold",
             head,
             row("all labels", _PRF_KEYS),
             f"Top-{TOP_K} metrics (%), at most {TOP_K} labels per image",
             head,
             row(f"top-{TOP_K}", [f"{k}_top{TOP_K}" for k in _PRF_KEYS]),
             "Ranking criteria (RETDM / MULAN)"]
    for key, label, better in (("hamming_loss", "hamming loss", "lower"),
                               ("ranking_loss", "ranking loss", "lower"),
                               ("one_error", "one-error", "lower"),
                               ("coverage", "coverage", "lower"),
                               ("avg_precision", "average precision", "higher")):
        lines.append(f"  {label:<18}{_fmt(results, key, False):>{width}}"
                     f"   ({better} is better)")
    lines.append("mAP (%)")
    lines.append(f"  {'mAP':<18}{_fmt(results, 'mAP', True):>{width}}"
                 f"   (over {results.get('num_labels_with_positives', '?')} "
                 "labels with a positive)")
    return "\n".join(lines)
