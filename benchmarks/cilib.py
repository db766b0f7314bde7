"""The paired bootstrap intervals of ``compare.py`` and
``decoding_scorers.py``: a metric of each seed's run on the same resamples
of the reported split's images, arm minus control, averaged over seeds."""

import numpy as np

CI_KEYS = ["mAP", "CF1", "OF1", "example_F1", "subset_accuracy"]


def ci_metrics(y, s, sets=None):
    """The ``CI_KEYS`` metrics (fractions): mAP from the scores ``s``, the
    others from ``sets`` (None: ``s`` at threshold 0.5)."""
    from mltf import metrics
    chosen = s if sets is None else np.asarray(sets, np.float32)
    prf = metrics.precision_recall_f1(y, chosen)
    by_set = metrics.set_metrics(y, chosen)
    return {"mAP": metrics.mean_average_precision(y, s), "CF1": prf["CF1"], "OF1": prf["OF1"],
            "example_F1": by_set["example_F1"], "subset_accuracy": by_set["subset_accuracy"]}


def _safe_div(num, den):
    """num / den elementwise, 0 where den == 0 (``mltf.metrics``' convention)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _weighted_ap(y, s, weights):
    """mAP [R] of each resample, a resample given by its row counts
    ``weights`` [R, N]: a row drawn w times enters w times, tied with its
    copies, so this is ``mltf.metrics.mean_average_precision`` of the rows
    drawn (ties pessimistic; a class with no drawn positive left out)."""
    ap = np.full((weights.shape[0], y.shape[1]), np.nan)
    for c in range(y.shape[1]):
        order = np.argsort(-s[:, c], kind="stable")
        v, pos = s[order, c], y[order, c].astype(bool)
        if not pos.any():
            continue
        # Every position's tie group ends at ``last``: the images scored >= it.
        last = np.where(np.append(v[:-1] != v[1:], True), np.arange(len(v)), len(v))
        last = np.minimum.accumulate(last[::-1])[::-1][pos]
        w = weights[:, order]
        n_ge = np.cumsum(w, axis=1)[:, last]
        w_pos = w[:, pos]
        pos_ge = np.cumsum(w_pos, axis=1)[:, np.searchsorted(np.flatnonzero(pos), last,
                                                             side="right") - 1]
        n_pos = w_pos.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap[:, c] = np.where(n_pos > 0, (w_pos * _safe_div(pos_ge, n_ge)).sum(axis=1)
                                / n_pos, np.nan)
    with np.errstate(invalid="ignore"):
        counted = (~np.isnan(ap)).sum(axis=1)
        return np.where(counted > 0, np.nansum(ap, axis=1) / np.maximum(counted, 1), np.nan)


def resampled_metrics(run, weights, ranking=True):
    """``[R, len(CI_KEYS)]``: ``ci_metrics`` of a run ``(ids, labels,
    scores[, sets])`` on each resample, given as row counts ``weights``
    [R, N], all resamples at once (the sums over drawn rows are products
    with the counts); ``ranking=False``: mAP left as 0."""
    y, s = run[1].astype(bool), np.asarray(run[2], np.float64)
    pred = (np.asarray(run[3], np.float32) if len(run) > 3 else s) >= 0.5
    n = weights.shape[1]
    w = weights.astype(np.float64)
    # float64 operands: numpy's matmul takes the BLAS path only for equal float types.
    tp, n_pred, n_true = (w @ m.astype(np.float64) for m in (y & pred, pred, y))
    cp, cr = _safe_div(tp, n_pred).mean(axis=1), _safe_div(tp, n_true).mean(axis=1)
    op = _safe_div(tp.sum(axis=1), n_pred.sum(axis=1))
    o_r = _safe_div(tp.sum(axis=1), n_true.sum(axis=1))
    inter, size = (y & pred).sum(axis=1), pred.sum(axis=1) + y.sum(axis=1)
    example_f1 = np.where(size == 0, 1.0, _safe_div(2 * inter, size))
    columns = {"mAP": _weighted_ap(y, s, weights) if ranking else np.zeros(len(w)),
               "CF1": _safe_div(2 * cp * cr, cp + cr),
               "OF1": _safe_div(2 * op * o_r, op + o_r), "example_F1": w @ example_f1 / n,
               "subset_accuracy": w @ (y == pred).all(axis=1).astype(np.float64) / n}
    return np.stack([columns[k] for k in CI_KEYS], axis=1)


def paired_intervals(arm, control, resamples, seed=0):
    """``{key: (mean difference, low, high)}`` of arm minus control (runs
    ``(ids, labels, scores)``, or with a fourth item, the sets scored)."""
    ids = arm[0][0]
    for run in arm + control:
        if not np.array_equal(run[0], ids):
            raise ValueError("the runs were evaluated on different images")
    rng = np.random.default_rng(seed)
    n = len(ids)

    def values(run):
        m = ci_metrics(run[1], run[2], run[3] if len(run) > 3 else None)
        return np.array([m[k] for k in CI_KEYS])

    point = np.nanmean([values(a) - values(c) for a, c in zip(arm, control)], axis=0)
    # Sets decoded from the same scores: mAP's difference is 0 on every resample.
    ranking = not all(np.array_equal(a[2], c[2]) for a, c in zip(arm, control))
    draws = np.empty((resamples, len(CI_KEYS)))
    # Blocks of resamples bound the [block, N] count matrices and temporaries.
    block = max(1, min(resamples, (1 << 22) // max(n, 1)))
    for start in range(0, resamples, block):
        weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                            for _ in range(min(block, resamples - start))])
        diffs = [resampled_metrics(a, weights, ranking) - resampled_metrics(c, weights, ranking)
                 for a, c in zip(arm, control)]
        draws[start:start + len(weights)] = np.nanmean(diffs, axis=0)
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {k: (float(point[i]), float(low[i]), float(high[i])) for i, k in enumerate(CI_KEYS)}
