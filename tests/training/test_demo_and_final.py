"""mltf.train on a demo dataset (issue 14 items 2-3): the demo diagnostics
logged each epoch on the selection split and written to metrics.json for the
reported split at 0.5 and at the tuned thresholds; and ``mltf.train.final``:
"best" ends with the weights of checkpoints/best.keras, "last" with the last
epoch's, for every method and across a resume."""

import csv
import glob
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_bindings, train_in_process
from mltf import backbones, inference, metrics, methods, models
from mltf.data import sources, writer
from mltf.data.sources import SourceOptions, demo_source
from mltf.training import selection
import pipelines

ARGS = {"demo_num_train": 96, "demo_num_val": 40, "demo_image_size": 32, "seed": 3}


@pytest.fixture(scope="module")
def demo_source_dir(tmp_path_factory):
    """The conftest demo dataset, written as make_tfrecords --source=demo
    writes it (the source and its options recorded)."""
    out = tmp_path_factory.mktemp("demo_source") / "ds"
    writer.write_dataset(sources.load("demo", SourceOptions(**ARGS)), str(out),
                         source_name="demo", arguments={**ARGS, "num_shards": 2},
                         num_shards=2, progress=False)
    return str(out)


def predict(model, data_dir, split, **kw):
    """(ids, labels, scores) of ``model`` on ``split``, in file order."""
    return inference.predict_dataset(model, pipelines.make_dataset(pipelines.InputConfig(
        data_dir, split, batch_size=16, training=False, image_size=24, preprocessing="unit",
        with_ids=True, **kw)), with_ids=True)


def digit_by_digit(split, ids, y, scores, threshold=0.5):
    """The demo rates counted one drawn digit at a time, from the scenes the
    test draws itself and the records' ids."""
    scenes = demo_source.generate(demo_source.Options(**ARGS))[split]
    row = {i: r for r, i in enumerate(ids)}
    found = {}
    for scene, label, state in zip(scenes.object_scene, scenes.object_label,
                                   scenes.object_state):
        r = row.get(f"demo-{split}-{scene:05d}")
        if r is not None:
            found.setdefault(int(state), []).append(scores[r, label] >= np.broadcast_to(
                threshold, (10,))[label])
    out = {f"recall_{name}": np.mean(found[state]) for name, state in (
        ("normal", demo_source.NORMAL), ("faint", demo_source.FAINT),
        ("occluded", demo_source.OCCLUDED))}
    for name, sets in (("pred", scores >= threshold), ("true", y > 0)):
        pairs = cross = 0
        for labels in sets:
            on = np.flatnonzero(labels)
            for a in range(len(on)):
                for b in range(a + 1, len(on)):
                    pairs += 1
                    i, j = demo_source.LABEL_NAMES[on[a]], demo_source.LABEL_NAMES[on[b]]
                    cross += not any(i in t and j in t for _, t, _ in demo_source.THEMES)
        out[f"cross_theme_rate_{name}"] = cross / pairs if pairs else np.nan
    return out


def spread_classifier(path):
    """A small CNN at 24 px whose large random head spreads the scores over
    (0, 1), so that 0.5 finds some digits and misses others; saved to ``path``."""
    keras.utils.set_random_seed(1)
    backbone = backbones.build_backbone("small_cnn", (24, 24, 3), widths=(8,))
    model = models.MultiLabelClassifier(backbone, 10, label_names=demo_source.LABEL_NAMES)
    model.build((None, 24, 24, 3))
    model.head.kernel.assign(np.random.default_rng(1).normal(
        0, 3, model.head.kernel.shape).astype("float32"))
    model.save(path)
    return str(path)


def test_a_demo_run_logs_and_reports_the_demo_diagnostics(demo_source_dir, tmp_path):
    # Nearly no learning from a spread start: the rates are neither 0 nor 1.
    train_in_process("demo.gin", tmp_path / "run", tiny_bindings(demo_source_dir, **{
        "mltf.train.xla": False, "mltf.train.select_fraction": 0.25, "mltf.train.epochs": 1,
        "mltf.train.learning_rate": 1e-6,
        "mltf.train.initial_model": f"'{spread_classifier(tmp_path / 'start.keras')}'"}))
    tmp_path = tmp_path / "run"
    report = json.loads((tmp_path / "metrics.json").read_text())
    model = keras.models.load_model(tmp_path / "model.keras")
    chosen = tuple((tmp_path / "select_ids.txt").read_text().split())
    # The last epoch's logs (the weights of model.keras): the selection split.
    ids, y, s = predict(model, demo_source_dir, "train", keep_ids=chosen)
    want = digit_by_digit("train", ids, y, s)
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    assert len(rows) == 1 and 0 < want["recall_normal"] < 1 and 0 < want["recall_faint"] < 1
    for key, value in want.items():
        assert float(rows[-1][f"val_{key}"]) == pytest.approx(value, abs=1e-6), key
        assert report["selection"]["demo"][key] == pytest.approx(value, abs=1e-6), key
    # TensorBoard: the same values as validation/epoch_<key>.
    logged = {}
    for path in glob.glob(str(tmp_path / "tensorboard" / "validation" / "events.out.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                logged[value.tag] = float(tf.make_ndarray(value.tensor))
    for key, value in want.items():
        assert logged[f"epoch_{key}"] == pytest.approx(value, abs=1e-6, nan_ok=True), key
    # metrics.json: the reported split at 0.5 and at the saved thresholds.
    ids, y, s = predict(model, demo_source_dir, "val")
    tuned = keras.ops.convert_to_numpy(model.thresholds)
    assert not np.allclose(tuned, 0.5)
    for entry, threshold in (("demo", 0.5), ("demo_tuned", tuned)):
        for key, value in digit_by_digit("val", ids, y, s, threshold).items():
            assert report[entry][key] == pytest.approx(value, abs=1e-6, nan_ok=True), entry
    assert report["demo"]["num_normal"] + report["demo"]["num_faint"] + report["demo"][
        "num_occluded"] == y.sum()


def classifier_weights(path):
    saved = keras.models.load_model(path, compile=False)
    saved = saved.base_classifier() if hasattr(saved, "base_classifier") else saved
    return [w for w, v in zip(saved.get_weights(), saved.weights) if "threshold" not in v.path]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# A constant learning rate as the checkpoint metric ("max", a tie is no
# improvement): the first epoch is the best, so "best" and "last" differ.
METHODS = {
    "bce": ("demo.gin", "learning_rate", {}),
    "wgan_gp": ("demo_wgangp.gin", "learning_rate_generator", {
        "mltf.train.initial_model": None, "mltf.train.pretrain_epochs": 1,
        "mltf.train.diagnostic_images": 0}),
    "retdm": ("miml_scene_small_cnn_retdm.gin", "learning_rate", {
        "mltf.build_backbone.embedding_dim": 16, "mltf.build_retdm.label_units": 16,
        "mltf.build_retdm.classification_epochs": 2, "mltf.build_retdm.embedding_epochs": 0}),
}


class Killed(Exception):
    pass


@pytest.mark.parametrize("final", [pytest.param("last", marks=pytest.mark.slow), "best"])
def test_final_weights_bce(demo_dir, tmp_path, final, monkeypatch):
    config, metric, extra = METHODS["bce"]
    bindings = tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.epochs": 3, "mltf.train.steps_per_epoch": 2,
        "mltf.train.checkpoint_metric": f"'{metric}'", "mltf.train.final": f"'{final}'",
        "mltf.train.select_fraction": 0.25, **extra})
    if final == "best":
        # Killed after training, before the outputs: the resumed run has no
        # epoch left and must still find the best one in its saved state.
        evaluate = selection.evaluate

        def killed(*args, **kwargs):
            raise Killed

        monkeypatch.setattr(selection, "evaluate", killed)
        with pytest.raises(Killed):
            train_in_process(config, tmp_path, bindings)
        assert not (tmp_path / "metrics.json").exists()
        monkeypatch.setattr(selection, "evaluate", evaluate)
    check_final(config, metric, bindings, tmp_path, final, demo_dir)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["wgan_gp", "retdm"])
def test_final_best_with_a_method_wrapper(demo_dir, tmp_path, method):
    config, metric, extra = METHODS[method]
    bindings = tiny_bindings(demo_dir, **{
        "mltf.train.xla": False, "mltf.train.epochs": 3, "mltf.train.steps_per_epoch": 2,
        "mltf.train.checkpoint_metric": f"'{metric}'", "mltf.train.final": "'best'",
        "mltf.train.select_fraction": 0.25, "pipelines.InputConfig.crop_sizes": (32, 24),
        **extra})
    check_final(config, metric, bindings, tmp_path, "best", demo_dir)


def check_final(config, metric, bindings, tmp_path, final, demo_dir):
    train_in_process(config, tmp_path, bindings)
    report = json.loads((tmp_path / "metrics.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    values = [float(r[metric]) for r in rows]
    best_epoch = int(rows[values.index(max(values))]["epoch"])  # the first of the ties
    assert len(rows) == 3 and best_epoch == 0
    want_epoch = best_epoch if final == "best" else 2
    assert report["final"]["choice"] == final and report["final"]["epoch"] == want_epoch
    kept = classifier_weights(tmp_path / "model.keras")
    chosen = classifier_weights(tmp_path / "checkpoints" / f"{final}.keras")
    other = classifier_weights(
        tmp_path / "checkpoints" / f"{'last' if final == 'best' else 'best'}.keras")
    assert same(kept, chosen) and not same(kept, other)
    # The selection split scores them as the log scored that epoch.
    assert report["selection"]["metrics"]["mAP"] == pytest.approx(
        float(rows[want_epoch]["val_mAP"]), abs=1e-6)
    # The final evaluation scored those weights.
    model = keras.models.load_model(tmp_path / "model.keras")
    _, y, s = predict(model, demo_dir, "val")
    assert report["metrics"]["mAP"] == pytest.approx(metrics.compute_all(y, s)["mAP"],
                                                     abs=1e-6)


def test_a_bad_final_is_refused(demo_dir, tmp_path):
    with pytest.raises(methods.SettingsError, match="mltf.train.final must be one of"):
        train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
            "mltf.train.final": "'first'"}))
