"""Ranking metrics, from the scores alone: per-class average precision and
mAP, and the per-image criteria of the RETDM paper (ranking loss, one-error,
coverage, label-ranking average precision). Ties are pessimistic, as in
scikit-learn (see the ``mltf.metrics`` docstring)."""

import numpy as np

from mltf.metrics.validation import _check_inputs

# Rows per chunk in the ranking computations keep the [rows, C] temporaries
# near 2**22 entries (a few tens of MB), whatever N is.
_CHUNK_ENTRIES = 1 << 22


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
