"""Every metric at once (``compute_all``, the flat dict of ``RESULT_KEYS``
that ``mltf.train``, ``mltf.evaluate`` and the evaluation callback write) and
its table for stdout (``format_table``)."""

import math
from typing import Optional

from mltf.metrics.ranking import _average_precision, _example_based, _nan_mean
from mltf.metrics.sets import SET_KEYS, _set_metrics
from mltf.metrics.thresholds import (_PRF_KEYS, DEFAULT_THRESHOLD, _binarize, _counts, _hamming,
                                     _prf_from_counts, _top_k_mask)
from mltf.metrics.validation import _check_inputs, _check_threshold

TOP_K = 3

_SET_COLUMNS = ("ex-P", "ex-R", "ex-F1", "subset", "Jaccard")

RESULT_KEYS = (
    ("num_examples", "num_labels", "num_labels_with_positives",
     "num_examples_with_labels")
    + _PRF_KEYS
    + tuple(f"{k}_top{TOP_K}" for k in _PRF_KEYS)
    + SET_KEYS
    + ("mAP", "hamming_loss", "ranking_loss", "one_error", "coverage",
       "avg_precision")
)


def compute_all(y_true, scores, threshold=DEFAULT_THRESHOLD) -> dict:
    """Every metric of ``mltf.metrics`` on one evaluation set, as the flat dict
    documented in the ``mltf.metrics`` docstring (keys in ``RESULT_KEYS`` order).

    ``threshold`` (scalar or per-class ``[C]``) applies to the C-/O- metrics,
    their top-3 variants, the set metrics and the Hamming loss; mAP and the
    ranking criteria use the scores only.
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
    res.update(_set_metrics(y, pred))
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


def format_table(results: dict, diagnostics: Optional[dict] = None) -> str:
    """A human-readable table of a ``compute_all`` dict, for stdout.

    Threshold metrics, their top-3 variant, the set metrics and mAP in
    percent (as in the papers' tables); labels per image and the RETDM/MULAN
    criteria as raw numbers. Missing keys and NaN print as ``n/a``. A
    ``dependency_diagnostics`` dict adds its block at the end.
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
             "Set metrics (%), per image then averaged over images",
             f"  {'':<18}" + "".join(f"{h:>{width}}" for h in _SET_COLUMNS),
             row("label sets", SET_KEYS[:5]),
             f"  {'labels per image':<18}"
             f"{_fmt(results, 'labels_per_image_pred', False):>{width}} predicted, "
             f"{_fmt(results, 'labels_per_image_true', False)} true",
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
    if diagnostics is not None:
        lines += _diagnostics_lines(diagnostics, width)
    return "\n".join(lines)


def _diagnostics_lines(d, width):
    def counts(key):
        return " ".join(str(n) for n in d.get(key, ()))

    return ["Dependency diagnostics (predicted against true label sets)",
            f"  {'co-occurrence gap':<18}{_fmt(d, 'cooccurrence_gap', False):>{width}}"
            f"   (mean |P(j|i) predicted - true| over {d.get('num_pairs', '?')} pairs; "
            "lower is better)",
            f"  {'novel sets (%)':<18}{_fmt(d, 'novel_set_rate_pred', True):>{width}} predicted, "
            f"{_fmt(d, 'novel_set_rate_true', True)} true (sets unseen in the training split)",
            f"  {'cardinality TVD':<18}{_fmt(d, 'cardinality_tvd', False):>{width}}"
            f"   (images with 0, 1, 2, ... labels: predicted {counts('cardinality_pred')}; "
            f"true {counts('cardinality_true')})"]


_COMPARED = (("example_F1", "example-F1", True), ("subset_accuracy", "subset accuracy", True),
             ("jaccard", "Jaccard", True), ("CF1", "C-F1", True), ("OF1", "O-F1", True),
             ("labels_per_image_pred", "labels per image", False))


def format_set_comparison(columns, scores_map=None) -> str:
    """The set metrics of several label-set predictions of one split side by
    side, for stdout: ``columns`` is a sequence of ``(title, compute_all
    dict)`` (e.g. the sets at 0.5, at the tuned thresholds and decoded);
    ``scores_map``, the mAP of the scores they share, goes in a last line
    (decoding changes sets, not scores)."""
    width = max(12, *(len(title) + 2 for title, _ in columns))
    lines = ["Label sets side by side (%; labels per image as a number)",
             f"  {'':<18}" + "".join(f"{title:>{width}}" for title, _ in columns)]
    for key, label, percent in _COMPARED:
        lines.append(f"  {label:<18}" + "".join(
            f"{_fmt(results, key, percent):>{width}}" for _, results in columns))
    if scores_map is not None:
        lines.append(f"  {'mAP of the scores':<18}{_fmt({'m': scores_map}, 'm', True):>{width}}"
                     "   (the same for every column)")
    return "\n".join(lines)
