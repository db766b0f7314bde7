"""Threshold (bipartition) metrics: a label is predicted when its score is
``>=`` its threshold, optionally among the image's ``top_k`` highest scores;
C-/O- precision, recall and F1, per-class numbers and the Hamming loss.

The functions with a leading underscore work on arrays already validated
(``mltf.metrics.validation``); ``mltf.metrics.report`` reuses them so that
``compute_all`` validates and binarizes once.
"""

import numpy as np

from mltf.metrics.ranking import _average_precision
from mltf.metrics.validation import _check_inputs, _check_scores, _check_threshold, _check_top_k

DEFAULT_THRESHOLD = 0.5

_PRF_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")


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
