"""The dependency diagnostics in a run (issue 14 item 2): logged each epoch
as val_* on the selection split, drawn as a TensorBoard image, and written
to metrics.json for the reported and the selection split (the demo's own
diagnostics only for a dataset of make_tfrecords --source=demo:
test_demo_and_final.py)."""

import csv
import glob
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_bindings, train_in_process
from mltf import inference, metrics
from mltf.data import splits
from mltf.training import diagnostics
from mltf.training.callbacks import checkpoint_mode
import pipelines


def test_a_run_logs_draws_and_reports_the_diagnostics(demo_dir, tmp_path):
    train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.select_fraction": 0.25}))
    report = json.loads((tmp_path / "metrics.json").read_text())
    chosen = set((tmp_path / "select_ids.txt").read_text().split())
    ids, labels = splits.read_ids_and_labels(demo_dir, "train")
    trained_on = labels[[i not in chosen for i in ids]]
    model = keras.models.load_model(tmp_path / "model.keras")

    def predict(split, **kw):
        return inference.predict_dataset(model, pipelines.make_dataset(pipelines.InputConfig(
            demo_dir, split, batch_size=16, training=False, image_size=24,
            preprocessing="unit", **kw)))

    # The last epoch's logs: the selection split against the part trained on.
    y_sel, s_sel = predict("train", keep_ids=tuple(chosen))
    want_sel = metrics.dependency_diagnostics(y_sel, s_sel, trained_on)
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    for key in metrics.DEPENDENCY_KEYS:
        assert float(rows[-1][f"val_{key}"]) == pytest.approx(want_sel[key], abs=1e-6), key
        assert report["selection"]["diagnostics"][key] == pytest.approx(want_sel[key], abs=1e-6)
    # metrics.json: the reported split's diagnostics, histograms and the
    # matrices (10 labels).
    y, s = predict("val")
    want = metrics.dependency_diagnostics(y, s, trained_on)
    got = report["diagnostics"]
    for key in (*metrics.DEPENDENCY_KEYS, "cardinality_pred", "cardinality_true"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
    assert sum(got["cardinality_true"]) == 40
    np.testing.assert_allclose(got["cooccurrence_true"], want["cooccurrence_true"])
    # One image per epoch in tensorboard/diagnostics: the two maps, side by side.
    events = glob.glob(str(tmp_path / "tensorboard" / "diagnostics" / "events.out.*"))
    images = {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "cooccurrence":
                    images[event.step] = tf.make_ndarray(value.tensor)
    assert sorted(images) == [0, 1]
    # Not written by make_tfrecords --source=demo: no demo diagnostics; the
    # default final is the last epoch.
    assert not {"demo", "demo_tuned"} & set(report) and "demo" not in report["selection"]
    assert "val_recall_faint" not in rows[-1] and report["final"] == {"choice": "last",
                                                                      "epoch": 1}
    width, height = (int(v) for v in images[1][:2])
    drawn = diagnostics.cooccurrence_image(want_sel["cooccurrence_pred"],
                                           want_sel["cooccurrence_true"])
    assert (height, width) == drawn.shape[:2]
    np.testing.assert_array_equal(tf.io.decode_png(images[1][2]).numpy(), drawn)


def test_heat_map_colours():
    # 0 and 1 are viridis's ends, 0.5 its middle anchor, NaN grey; each entry
    # a cell x cell square, rows top to bottom.
    image = diagnostics.heat_map([[0.0, 1.0], [0.5, np.nan]], cell=2)
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 0], [68, 1, 84])
    np.testing.assert_array_equal(image[1, 3], [253, 231, 37])
    np.testing.assert_array_equal(image[3, 0], [33, 145, 140])
    np.testing.assert_array_equal(image[2, 2], [128, 128, 128])
    # 0.125: half way from the first anchor to the second.
    np.testing.assert_array_equal(diagnostics.heat_map([[0.125]])[0, 0], [64, 42, 112])
    both = diagnostics.cooccurrence_image(np.zeros((3, 3)), np.ones((3, 3)))
    cell = 240 // 3
    assert both.shape == (3 * cell, 2 * 3 * cell + cell // 2, 3)
    assert (both[:, 3 * cell:3 * cell + cell // 2] == 255).all()


def test_checkpoint_mode_minimises_the_gaps():
    assert [checkpoint_mode(m) for m in ("val_cooccurrence_gap", "val_cardinality_tvd",
                                         "val_novel_set_rate_pred")] == ["min", "min", "max"]
