"""The selection split (issue 14): a run chooses its epoch, schedule and
thresholds on a part held out of the training split and reads the reported
split once, at the end."""

import csv
import json

import keras
import numpy as np
import pytest

from conftest import tiny_bindings, train_in_process
from mltf import inference, metrics
from mltf.data import schema, splits
import pipelines


def select_dataset(data_dir, ids, **kwargs):
    return pipelines.make_dataset(pipelines.InputConfig(
        data_dir, "train", batch_size=16, training=False, image_size=24,
        preprocessing="unit", keep_ids=tuple(ids), **kwargs))


def test_keep_and_drop_ids_partition_a_split(demo_dir):
    ids, _ = splits.read_ids_and_labels(demo_dir, "train")
    chosen = tuple(ids[::7])
    config = dict(data_dir=demo_dir, split="train", batch_size=16, training=False,
                  image_size=24, preprocessing="unit", with_ids=True)

    def read(**kw):
        out = []
        for x, _ in pipelines.make_dataset(pipelines.InputConfig(**config, **kw)):
            out += [i.decode() for i in x["ids"].numpy()]
        return out

    kept, dropped = read(keep_ids=chosen), read(drop_ids=chosen)
    assert sorted(kept) == sorted(chosen)
    assert not set(kept) & set(dropped)
    assert sorted(kept + dropped) == sorted(ids)
    assert pipelines.input.num_read(pipelines.InputConfig(demo_dir, drop_ids=chosen),
                                    len(ids)) == len(dropped)
    with pytest.raises(ValueError, match="not both"):
        read(keep_ids=chosen, drop_ids=chosen)


def test_choices_are_made_on_the_selection_split(demo_dir, tmp_path):
    results = train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.select_fraction": 0.25,
        "mltf.train.select_seed": 3}))
    report = json.loads((tmp_path / "metrics.json").read_text())
    selection = report["selection"]
    chosen = (tmp_path / "select_ids.txt").read_text().split()
    assert selection["carved"] and selection["num_examples"] == len(chosen) == 24
    # The same ids again from the data, the fraction and the seed.
    ids, labels = splits.read_ids_and_labels(demo_dir, "train")
    assert sorted(chosen) == sorted(ids[splits.holdout_mask(labels, 0.25, 3)])
    assert report["steps_per_epoch"] == (96 - 24) // 8
    # The last epoch's val_* logs and the thresholds are the selection split's ...
    model = keras.models.load_model(tmp_path / "model.keras")
    y_sel, s_sel = inference.predict_dataset(model, select_dataset(demo_dir, chosen))
    assert len(y_sel) == 24
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    assert float(rows[-1]["val_mAP"]) == pytest.approx(metrics.compute_all(y_sel, s_sel)["mAP"],
                                                       abs=1e-6)
    assert selection["metrics"]["mAP"] == pytest.approx(float(rows[-1]["val_mAP"]), abs=1e-6)
    np.testing.assert_allclose(report["thresholds"], metrics.tune_thresholds(y_sel, s_sel))
    # ... and the reported metrics the evaluation split's, at 0.5 and at them.
    val = pipelines.make_dataset(pipelines.InputConfig(
        demo_dir, "val", batch_size=16, training=False, image_size=24, preprocessing="unit"))
    y, s = inference.predict_dataset(model, val)
    assert len(y) == 40 and report["split"] == "val"
    assert results["mAP"] == pytest.approx(metrics.compute_all(y, s)["mAP"], abs=1e-6)
    tuned = metrics.compute_all(y, s, threshold=model.thresholds.numpy())
    assert report["metrics_tuned"]["CF1"] == pytest.approx(tuned["CF1"], abs=1e-6)
    # predictions.npz: the reported split's ids, labels and scores, for paired comparisons.
    with np.load(tmp_path / "predictions.npz") as saved:
        ids, _ = splits.read_ids_and_labels(demo_dir, "val")
        assert sorted(saved["ids"]) == sorted(ids)
        np.testing.assert_allclose(saved["scores"], s, atol=1e-6)
        np.testing.assert_array_equal(saved["labels"], y)


def test_select_fraction_zero_is_the_old_protocol_and_says_so(demo_dir, tmp_path):
    train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.select_fraction": 0.0, "mltf.train.epochs": 1}))
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["selection"]["carved"] is False and "optimistic" in report["selection"]["note"]
    assert not (tmp_path / "select_ids.txt").exists()
    assert report["selection"]["metrics"] == report["metrics"]
    assert report["steps_per_epoch"] == 96 // 8


def test_methods_draw_label_sets_from_the_training_part_only(demo_dir, tmp_path):
    from mltf.methods.wgan_gp import MismatchedLabels
    labels = schema.read_labels(demo_dir, "train")[:5]
    transform = MismatchedLabels("train", labels)(pipelines.InputConfig(demo_dir))
    draws = transform({}, labels, np.array([1, 2]))["mismatched_labels"].numpy()
    assert {tuple(r) for r in draws} <= {tuple(r) for r in labels}
