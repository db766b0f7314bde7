"""``mltf.train.threshold_mode`` (issue 15 item 7): the thresholds saved with
the model are ``choose_thresholds``'s on the selection split, and
``metrics.json`` says how they were chosen."""

import json

import keras
import numpy as np
import pytest

from conftest import tiny_bindings, train_in_process
from mltf import inference, metrics
from test_selection import select_dataset


def test_a_precision_target_run_saves_the_selection_splits_thresholds(demo_dir, tmp_path):
    train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.select_fraction": 0.25, "mltf.train.epochs": 1,
        "mltf.train.threshold_mode": '"precision"', "mltf.train.threshold_target": 0.8}))
    report = json.loads((tmp_path / "metrics.json").read_text())
    chosen = (tmp_path / "select_ids.txt").read_text().split()
    model = keras.models.load_model(tmp_path / "model.keras")
    y_sel, s_sel = inference.predict_dataset(model, select_dataset(demo_dir, chosen))
    expected, choice = metrics.choose_thresholds(y_sel, s_sel, mode="precision", target=0.8)
    np.testing.assert_allclose(report["thresholds"], expected)
    np.testing.assert_allclose(model.thresholds.numpy(), expected.astype(np.float32))
    assert report["threshold_choice"] == {
        "mode": "precision", "target": 0.8,
        "unmet": [report["label_names"][j] for j in choice["unmet"]]}


@pytest.mark.parametrize("bindings, match", [
    ({"mltf.train.threshold_mode": '"median"'}, "one of"),
    ({"mltf.train.threshold_mode": '"recall"'}, "needs a target")])
def test_a_bad_threshold_mode_stops_the_run_before_it_trains(demo_dir, tmp_path, bindings,
                                                             match):
    with pytest.raises(ValueError, match=match):
        train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **bindings))
    assert not (tmp_path / "training_log.csv").exists()
