"""Set (example-based) metrics: each image's predicted label set, at a
threshold, against its true set, averaged over the images.

Label dependency shows first in whole label sets (a model that gets every
label half right has a fine O-F1 and never one right set), which the per-
label and per-rank metrics of ``thresholds`` and ``ranking`` cannot see.

Empty sets, one convention for every function here: an image whose true and
predicted sets are both empty is a perfect answer (P = R = F1 = Jaccard = 1,
an exact match); any other image with an empty set on one side has nothing
right, so P = R = F1 = Jaccard = 0 (an empty prediction for a non-empty
truth, and a non-empty prediction for an empty truth, alike). scikit-learn
has no single ``zero_division`` for this: its ``zero_division=1`` agrees on
the both-empty images, ``zero_division=0`` on the one-sided ones
(``jaccard_score(average="samples", zero_division=1)`` agrees everywhere).
"""

import numpy as np

from mltf.metrics.thresholds import DEFAULT_THRESHOLD, _binarize, _safe_div
from mltf.metrics.validation import _check_inputs, _check_threshold

SET_KEYS = ("example_P", "example_R", "example_F1", "subset_accuracy", "jaccard",
            "labels_per_image_pred", "labels_per_image_true")


def _set_metrics(y, pred) -> dict:
    """The ``SET_KEYS`` dict of bool ``[N, C]`` truth and predictions."""
    inter = (y & pred).sum(axis=1)
    n_pred, n_true = pred.sum(axis=1), y.sum(axis=1)
    both_empty = (n_pred + n_true) == 0

    def mean(num, den):
        return float(np.where(both_empty, 1.0, _safe_div(num, den)).mean())

    return {"example_P": mean(inter, n_pred),
            "example_R": mean(inter, n_true),
            # 2|T∩P| / (|T| + |P|) = 2PR / (P+R) per image (sklearn's samples
            # F1), not the F1 of the mean P and R.
            "example_F1": mean(2 * inter, n_pred + n_true),
            "subset_accuracy": float((y == pred).all(axis=1).mean()),
            "jaccard": mean(inter, (y | pred).sum(axis=1)),
            "labels_per_image_pred": float(n_pred.mean()),
            "labels_per_image_true": float(n_true.mean())}


def set_metrics(y_true, scores, threshold=DEFAULT_THRESHOLD) -> dict:
    """Every set metric (dict with the keys of ``SET_KEYS``), predictions as
    in ``binarize`` (``scores >= threshold``, scalar or per-class ``[C]``; no
    top-k). Empty sets: an image whose true and predicted sets are both
    empty scores 1 on every ratio and is an exact match; an image with only
    one empty set (empty prediction, or empty truth) scores 0 on every ratio.

    * ``example_P`` / ``example_R`` / ``example_F1``: per image
      ``|T∩P| / |P|``, ``|T∩P| / |T|`` and ``2|T∩P| / (|T| + |P|)``, each
      averaged over the N images (sklearn's
      ``precision_recall_fscore_support(average="samples")``; F1 is the mean
      of the per-image F1, not the F1 of the means);
    * ``subset_accuracy``: fraction of images whose predicted set equals the
      true set exactly (sklearn's multi-label ``accuracy_score``);
    * ``jaccard``: per image ``|T∩P| / |T∪P|``, averaged (sklearn's
      ``jaccard_score(average="samples", zero_division=1)``);
    * ``labels_per_image_pred`` / ``labels_per_image_true``: mean ``|P|``
      and ``|T|``, labels per image (not fractions).
    """
    y, s = _check_inputs(y_true, scores)
    return _set_metrics(y, _binarize(s, _check_threshold(threshold, s.shape[1]), None))


def example_precision_recall_f1(y_true, scores, threshold=DEFAULT_THRESHOLD) -> dict:
    """Example-based precision, recall and F1 (keys ``example_P``,
    ``example_R``, ``example_F1``), as in ``set_metrics``: an image with both
    sets empty scores 1 on all three, one with a single empty set 0."""
    res = set_metrics(y_true, scores, threshold)
    return {k: res[k] for k in ("example_P", "example_R", "example_F1")}


def subset_accuracy(y_true, scores, threshold=DEFAULT_THRESHOLD) -> float:
    """Fraction of images whose predicted set equals the true set (an empty
    prediction for an empty truth is a match), as in ``set_metrics``."""
    return set_metrics(y_true, scores, threshold)["subset_accuracy"]


def jaccard_index(y_true, scores, threshold=DEFAULT_THRESHOLD) -> float:
    """Mean over images of ``|T∩P| / |T∪P|`` (1 for an image with both sets
    empty, 0 when exactly one is empty), as in ``set_metrics``."""
    return set_metrics(y_true, scores, threshold)["jaccard"]
