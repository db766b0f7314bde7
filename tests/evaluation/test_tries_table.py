"""benchmarks/trieslib.py: the table of tries is built from the SELECTION
metrics and the last logged critic diagnostics of hand-made run folders."""

import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import trieslib  # noqa: E402

TEST_SPLIT = {"mAP": 0.99, "example_F1": 0.99, "subset_accuracy": 0.99,
              "labels_per_image_pred": 9.0}


def make_run(path, selection, log_rows, train_seconds, wall=None, carved=True):
    os.makedirs(path)
    report = {"metrics": TEST_SPLIT, "train_seconds": train_seconds,
              "selection": {"carved": carved, "metrics": {**selection, "CF1": 0.5}}}
    with open(os.path.join(path, "metrics.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(path, "training_log.csv"), "w") as f:
        f.write("\n".join(log_rows) + "\n")
    if wall is not None:
        with open(os.path.join(path, trieslib.WALL_FILE), "w") as f:
            json.dump({"wall_seconds": wall}, f)
    return str(path)


def test_row_averages_selection_figures_and_last_diagnostics(tmp_path):
    log = ["epoch,loss,val_critic_auc_generated,val_critic_auc_mismatched,val_softness_auc",
           "0,1.0,0.9,0.8,0.95", "1,0.8,0.60,0.50,0.75"]
    a = make_run(tmp_path / "a", {"mAP": 0.60, "example_F1": 0.50, "subset_accuracy": 0.20,
                                  "labels_per_image_pred": 1.5}, log, 100.0, wall=130.0)
    log_b = log[:2] + ["1,0.8,0.70,0.54,0.85"]
    b = make_run(tmp_path / "b", {"mAP": 0.64, "example_F1": 0.54, "subset_accuracy": 0.30,
                                  "labels_per_image_pred": 2.0}, log_b, 120.0, wall=150.0)
    row = trieslib.try_row("wgan_gp", "inv_temp_3", ["mltf.build_wgan.x = 3"], [a, b])
    want = {"mAP": 0.62, "example_F1": 0.52, "subset_accuracy": 0.25,
            "labels_per_image_pred": 1.75, "val_critic_auc_generated": 0.65,
            "val_critic_auc_mismatched": 0.52,
            "val_softness_auc": 0.80, "train_seconds": 110.0, "wall_seconds": 140.0}
    assert row["seeds"] == 2 and row["bindings"] == ["mltf.build_wgan.x = 3"]
    # The test split's 0.99s are never read.
    assert {key: row[key] for key in want} == pytest.approx(want)
    line = trieslib.markdown([row]).splitlines()[2]
    assert line == ("| wgan_gp | inv_temp_3 | 2 | 62.00 | 52.00 | 25.00 | 1.750 | 0.650 | 0.520 "
                    "| 0.800 | - | 110 | 140 | `mltf.build_wgan.x = 3` |")


def test_runs_without_a_critic_or_timing_show_dashes(tmp_path):
    a = make_run(tmp_path / "a", {"mAP": 0.861, "example_F1": 0.7, "subset_accuracy": 0.6,
                                  "labels_per_image_pred": 1.04},
                 ["epoch,loss,metric_grad_ratio", "0,1.0,0.5", "1,1.0,4.6e-05"], 40.0)
    line = trieslib.markdown([trieslib.try_row("retdm", "retdm", [], [a])]).splitlines()[2]
    assert line == ("| retdm | retdm | 1 | 86.10 | 70.00 | 60.00 | 1.040 | - | - | - | 4.6e-05 "
                    "| 40 | - | (the config) |")


def test_a_run_chosen_on_its_test_split_is_refused(tmp_path):
    a = make_run(tmp_path / "a", {"mAP": 0.5, "example_F1": 0.5, "subset_accuracy": 0.5,
                                  "labels_per_image_pred": 1.0}, ["epoch", "0"], 1.0,
                 carved=False)
    with pytest.raises(ValueError, match="no selection split"):
        trieslib.run_figures(a)
