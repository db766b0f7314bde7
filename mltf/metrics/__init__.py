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
``example_P``, ``example_R``              example-based precision / recall at the
                                          threshold: per image ``|T∩P| / |P|`` and
                                          ``|T∩P| / |T|`` (T the true, P the predicted
                                          label set), averaged over the N images
``example_F1``                            mean over images of the per-image F1
                                          ``2|T∩P| / (|T|+|P|)`` (sklearn's ``samples``
                                          F1; not the F1 of the two means)
``subset_accuracy``                       fraction of images whose predicted set equals
                                          the true set exactly
``jaccard``                               mean over images of ``|T∩P| / |T∪P|``
``labels_per_image_pred``                 mean ``|P|``, labels predicted per image (a
                                          count, not a fraction)
``labels_per_image_true``                 mean ``|T|``, true labels per image
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
number of labels in [0, C-1], and the two ``labels_per_image_*``, numbers of
labels in [0, C]; precision, recall, F1, ``subset_accuracy``, ``jaccard``,
``mAP`` and ``avg_precision`` are better higher, ``hamming_loss``,
``ranking_loss``, ``one_error`` and ``coverage`` lower.

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
* **Empty label sets** (set metrics): an image whose true and predicted
  sets are both empty is a perfect answer (its P = R = F1 = Jaccard = 1, and
  an exact match); an image with exactly one empty set, an empty prediction
  for a non-empty truth or a non-empty prediction for an empty truth, has
  P = R = F1 = Jaccard = 0. (scikit-learn's ``zero_division=1`` agrees on
  the first kind, ``zero_division=0`` on the second.)
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

Layout: ``validation`` (the input checks), ``thresholds`` (``binarize``, C-/O-
precision, recall, F1, per-class numbers, Hamming loss), ``ranking`` (AP,
mAP and the per-image ranking criteria), ``sets`` (example-based P / R /
F1, subset accuracy, Jaccard), ``tuning`` (``tune_thresholds``,
``choose_thresholds``: F1, F-beta, precision- or recall-target, global),
``report`` (``compute_all``, ``format_table``), ``dependency``
(``dependency_diagnostics``: co-occurrence fidelity, novel label sets and
set sizes, against the training split's sets; not part of ``compute_all``). Import
from ``mltf.metrics``; ``mltf.metrics.demo`` (recall of faint and occluded
digits, pairs across themes), which only the demo dataset allows, is
imported on its own.
"""

from mltf.metrics.dependency import (DEPENDENCY_KEYS, cooccurrence_matrix, dependency_diagnostics,
                                     diagnostics_json)
from mltf.metrics.ranking import (average_precision, coverage, label_ranking_average_precision,
                                  mean_average_precision, one_error, ranking_loss)
from mltf.metrics.report import (RESULT_KEYS, TOP_K, compute_all, format_set_comparison,
                                 format_table)
from mltf.metrics.sets import (SET_KEYS, example_precision_recall_f1, jaccard_index, set_metrics,
                               subset_accuracy)
from mltf.metrics.thresholds import (DEFAULT_THRESHOLD, binarize, hamming_loss, per_class_metrics,
                                     precision_recall_f1)
from mltf.metrics.tuning import (THRESHOLD_MODES, check_threshold_mode, choose_thresholds,
                                 tune_thresholds)

__all__ = [
    "DEFAULT_THRESHOLD",
    "TOP_K",
    "RESULT_KEYS",
    "SET_KEYS",
    "binarize",
    "precision_recall_f1",
    "per_class_metrics",
    "average_precision",
    "mean_average_precision",
    "hamming_loss",
    "set_metrics",
    "example_precision_recall_f1",
    "subset_accuracy",
    "jaccard_index",
    "ranking_loss",
    "one_error",
    "coverage",
    "label_ranking_average_precision",
    "tune_thresholds",
    "choose_thresholds",
    "check_threshold_mode",
    "THRESHOLD_MODES",
    "compute_all",
    "format_table",
    "format_set_comparison",
    "DEPENDENCY_KEYS",
    "dependency_diagnostics",
    "cooccurrence_matrix",
    "diagnostics_json",
]
