"""The side-by-side table of label sets a run with set decoding prints at
its end (``metrics.format_set_comparison``, ``trainer._set_comparison``)."""

import numpy as np

from mltf import metrics
from mltf.training import trainer


def _sets():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    scores = np.array([[.9, .2, .4], [.3, .8, .1], [.7, .6, .2], [.2, .1, .9]])
    # The same scores at 0.5, and two other set predictions of them.
    at_half = metrics.compute_all(y, scores)
    tuned = metrics.compute_all(y, scores, threshold=np.array([.5, .5, .3]))
    decoded = metrics.compute_all(y, scores, threshold=np.array([.5, .55, .3]))
    return at_half, tuned, decoded


def test_columns_hold_each_predictions_set_metrics():
    at_half, tuned, decoded = _sets()
    # By hand: at 0.5 image 0 misses label 2 and image 2 gets both right:
    # 3 of 4 sets exact; example-F1 (2/3 + 1 + 1 + 1) / 4.
    assert at_half["subset_accuracy"] == 0.75
    assert np.isclose(at_half["example_F1"], (2 / 3 + 3) / 4)
    # 0.3 on label 2 brings image 0 right and adds nothing wrong: 4 of 4,
    # 6 labels on 4 images.
    assert tuned["subset_accuracy"] == 1.0
    table = metrics.format_set_comparison(
        [("threshold 0.5", at_half), ("tuned", tuned), ("decoded (w=1)", decoded)],
        at_half["mAP"])
    lines = table.splitlines()
    assert lines[1].split() == ["threshold", "0.5", "tuned", "decoded", "(w=1)"]
    subset = next(line for line in lines if line.strip().startswith("subset accuracy"))
    assert subset.split()[2:] == ["75.00", "100.00", f"{100 * decoded['subset_accuracy']:.2f}"]
    per_image = next(line for line in lines if line.strip().startswith("labels per image"))
    assert per_image.split()[3:] == [f"{at_half['labels_per_image_pred']:.4f}", "1.5000",
                                     f"{decoded['labels_per_image_pred']:.4f}"]
    assert f"{100 * at_half['mAP']:.2f}" in lines[-1] and "mAP of the scores" in lines[-1]


def test_a_run_report_prints_its_three_sets_and_the_choice():
    at_half, tuned, decoded = _sets()
    report = {"metrics": at_half, "metrics_tuned": tuned,
              "metrics_set_decoded": {"metrics": decoded, "w": 0.3, "scorer": "LabelSetPrior",
                                      "metric": "example_F1"}}
    text = trainer._set_comparison(report)
    assert "decoded (w=0.3)" in text and "LabelSetPrior" in text and "example_F1" in text
    # Without tuned thresholds (select_fraction 0 and no tuning) two columns.
    del report["metrics_tuned"]
    header = text.splitlines()[2]
    assert "tuned" in header
    assert "tuned" not in trainer._set_comparison(report).splitlines()[2]
    # BCE decoded by its likelihood alone has no scorer name.
    report["metrics_set_decoded"]["scorer"] = None
    assert "no dependency scorer" in trainer._set_comparison(report)
