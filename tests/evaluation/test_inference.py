"""mltf.evaluate, mltf.predict and mltf.export (and mltf.inference beneath
them) against an independent path: images decoded with tf.io.decode_image,
resized with tf.image.resize and scaled by hand, fed to the Keras model."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk_metrics

from conftest import read_records, run_main, write_corrupt, write_image  # noqa: F401
from mltf import backbones, evaluate, export, inference, metrics, models, predict
from mltf.data import writer
from mltf.data.sources import Item, SourceData

LABELS = ["cat", "dog", "sky"]
SIZE = 32
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------
# Fixtures: a tiny saved model and tiny datasets
# --------------------------------------------------------------------------

def build_model(label_names, seed=0, input_shape=(SIZE, SIZE, 3)):
    keras.utils.set_random_seed(seed)
    backbone = backbones.build_backbone("small_cnn", input_shape, widths=(8,))
    model = models.MultiLabelClassifier(backbone, len(label_names),
                                        label_names=label_names, name="classifier")
    model.build((None,) + tuple(input_shape))
    model.compile(optimizer="adam", xla=False)
    # A larger head than the initialiser's spreads the scores over (0, 1).
    rng = np.random.default_rng(seed)
    model.head.kernel.assign(rng.normal(0, 3, model.head.kernel.shape).astype("float32"))
    return model


def independent_inputs(encoded_list, size=SIZE):
    """The test's own decode + resize + 'unit' scaling (small_cnn)."""
    out = []
    for data in encoded_list:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
        out.append(image.numpy())
    raw = np.stack(out)  # [0, 255]
    return raw, raw / 255.0


def model_scores(model, x):
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    # Datasets: varied sizes, JPEG and PNG, every label with a positive.
    pattern = [[0], [1], [2], [0, 2], [1, 2], [], [0, 1], [0, 1, 2]]
    items = []
    for i in range(16):
        ext = "png" if i % 3 == 0 else "jpg"
        path = root / "img" / f"{i:02d}.{ext}"
        write_image(path, 20 + (i % 4) * 9, 44 - (i % 3) * 7, seed=i)
        items.append(Item(f"{i:02d}.{ext}", pattern[i % len(pattern)], path=str(path)))
    writer.write_dataset(SourceData(LABELS, {"train": items[:4], "val": items[4:]}),
                         str(root / "ds"), num_shards=2, progress=False)
    four = SourceData(LABELS + ["tree"], {"val": items[:2]})
    writer.write_dataset(four, str(root / "ds4"), progress=False)

    model = build_model(LABELS)
    model_file = str(root / "model.keras")
    model.save(model_file)
    # The same model with tuned thresholds: the median score of each class on
    # the val split, far from 0.5 for this random model.
    _, records = read_records(str(root / "ds"), "val")
    _, x = independent_inputs([r["encoded"] for r in records])
    s = model_scores(model, x)
    tuned = np.median(s, axis=0).astype(np.float32)
    model.set_thresholds(tuned)
    tuned_file = str(root / "tuned.keras")
    model.save(tuned_file)
    model.set_thresholds(np.full(len(LABELS), 0.5))
    return {"root": root, "data_dir": str(root / "ds"), "data_dir4": str(root / "ds4"),
            "model": model, "model_file": model_file, "tuned_file": tuned_file,
            "tuned": tuned}


def val_truth(data_dir, model):
    """(y [N, C], scores [N, C]) of the val split by the independent path."""
    _, records = read_records(data_dir, "val")
    _, x = independent_inputs([r["encoded"] for r in records])
    y = np.zeros((len(records), len(LABELS)), np.float32)
    for row, r in enumerate(records):
        y[row, r["labels"]] = 1
    return y, model_scores(model, x)


def run_module(args, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m"] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def assert_metrics_equal(got, want):
    assert list(got) == list(metrics.RESULT_KEYS)
    for key in metrics.RESULT_KEYS:
        if isinstance(want[key], float) and np.isnan(want[key]):
            assert np.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key


# --------------------------------------------------------------------------
# mltf.inference
# --------------------------------------------------------------------------

def test_spec_from_model_and_image_size_override(env):
    spec = inference.inference_spec(env["model"])
    assert spec.image_size == (SIZE, SIZE)
    assert spec.preprocessing == "unit" and spec.backbone == "small_cnn"
    assert spec.label_names == LABELS
    np.testing.assert_allclose(spec.thresholds, 0.5)
    assert inference.inference_spec(env["model"], "24x40").image_size == (24, 40)
    any_size = build_model(LABELS, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="--image_size"):
        inference.inference_spec(any_size)
    assert inference.inference_spec(any_size, 48).image_size == (48, 48)
    with pytest.raises(inference.ModelNotFoundError, match="model.keras"):
        inference.resolve_model_path(str(env["root"] / "img"))


def test_model_preprocessing_attribute_beats_backbone_name():
    # A small CNN ("unit" scaling) under VGG-16's name ("caffe" by the name).
    keras.utils.set_random_seed(0)
    small = backbones.build_backbone("small_cnn", (SIZE, SIZE, 3), widths=(8,))
    renamed = keras.Model(small.input, small.output, name="vgg16")
    model = models.MultiLabelClassifier(renamed, len(LABELS), label_names=LABELS)
    model.build((None, SIZE, SIZE, 3))
    # Set on the instance, so the test holds whether or not the class has the
    # attribute: None is what a file written before it loads with.
    model.preprocessing = None
    assert inference.inference_spec(model).preprocessing == "caffe"
    model.preprocessing = "unit"
    spec = inference.inference_spec(model)
    assert spec.preprocessing == "unit" and spec.backbone == "vgg16"
    # An explicit override still wins over the model's word.
    assert inference.inference_spec(model, preprocessing_mode="tf").preprocessing == "tf"
    # The CLIs' inputs follow it: 'unit' is x / 255.
    raw = np.full((1, SIZE, SIZE, 3), 255.0, np.float32)
    np.testing.assert_allclose(inference.preprocess_batch(raw, spec).numpy(), 1.0)


# --------------------------------------------------------------------------
# mltf.evaluate
# --------------------------------------------------------------------------

def test_evaluate_cli_matches_independent_metrics(env, tmp_path):
    # A run folder: --model names the folder, the report lands in it.
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(env["model_file"], run / "model.keras")
    proc = run_module(["mltf.evaluate", f"--model={run}", f"--data_dir={env['data_dir']}",
                       "--batch_size=5"])
    assert proc.returncode == 0, proc.stderr
    for part in ("mAP", "C-F1", "Set metrics (%)", "ex-F1", "labels per image"):
        assert part in proc.stdout, part  # format_table
    with open(run / "eval_val.json") as f:
        report = json.load(f)
    # The figures beside it, drawn in a process without a display.
    for key in ("pr_curves", "ap", "images"):
        assert (run / f"eval_val_{key}.png").stat().st_size > 1000, key
    assert list(report)[:4] == ["model", "data_dir", "split", "thresholds_used"]
    assert report["model"] == str(run / "model.keras")
    assert report["split"] == "val" and report["thresholds_used"] == "0.5"
    assert report["image_size"] == [SIZE, SIZE] and report["preprocessing"] == "unit"
    y, s = val_truth(env["data_dir"], env["model"])
    assert_metrics_equal(report["metrics"], metrics.compute_all(y, s))
    # sklearn's multi-label accuracy is the exact match of the label sets.
    assert report["metrics"]["subset_accuracy"] == pytest.approx(
        sk_metrics.accuracy_score(y, s >= 0.5))
    per = metrics.per_class_metrics(y, s)
    assert list(report["per_class"]) == LABELS
    for j, name in enumerate(LABELS):
        entry = report["per_class"][name]
        assert set(entry) >= {"AP", "precision", "recall", "f1", "threshold"}
        assert entry["threshold"] == 0.5
        assert entry["AP"] == pytest.approx(per["ap"][j], abs=1e-6)
        assert entry["f1"] == pytest.approx(per["f1"][j], abs=1e-6)
        assert entry["precision"] == pytest.approx(per["precision"][j], abs=1e-6)
        assert entry["recall"] == pytest.approx(per["recall"][j], abs=1e-6)


def test_evaluate_model_thresholds(env, tmp_path, capsys):
    out = tmp_path / "tuned.json"
    code, stdout, _ = run_main(evaluate, [f"--model={env['tuned_file']}",
                                          f"--data_dir={env['data_dir']}",
                                          "--thresholds=model", f"--output={out}"], capsys)
    assert code == 0 and "thresholds model" in stdout
    report = json.loads(out.read_text())
    tuned = env["tuned"]
    y, s = val_truth(env["data_dir"], env["model"])
    # The tuned thresholds change predictions, and the report follows them.
    assert ((s >= tuned) != (s >= 0.5)).any()
    assert report["thresholds_used"] == "model"
    assert [report["per_class"][n]["threshold"] for n in LABELS] == pytest.approx(
        tuned.tolist())
    assert_metrics_equal(report["metrics"], metrics.compute_all(y, s, threshold=tuned))
    at_half = metrics.compute_all(y, s)
    assert any(report["metrics"][k] != pytest.approx(at_half[k], abs=1e-9)
               for k in ("CP", "CR", "OP", "OR", "hamming_loss"))
    # The default is 0.5 even for a model with tuned thresholds.
    report = evaluate.evaluate(env["tuned_file"], env["data_dir"])
    assert_metrics_equal(report["metrics"], at_half)


def test_evaluate_figures_as_pngs_and_in_tensorboard(env, tmp_path, capsys):
    from matplotlib import image as mpl_image
    out, tb = tmp_path / "e.json", tmp_path / "tb"
    code, stdout, _ = run_main(evaluate, [f"--model={env['tuned_file']}",
                                          f"--data_dir={env['data_dir']}",
                                          "--thresholds=model", f"--output={out}",
                                          f"--tensorboard_dir={tb}"], capsys)
    assert code == 0
    pngs = [tmp_path / f"e_{k}.png" for k in ("pr_curves", "ap", "images")]
    assert f"Figures: {', '.join(map(str, pngs))}; TensorBoard events in {tb}" in stdout
    shapes = {}
    for path in pngs:
        pixels = mpl_image.imread(path)
        assert pixels.ndim == 3 and pixels[..., :3].std() > 0.01, path
        shapes[path.stem[2:]] = pixels.shape[:2]
    # 12 val images: 4 columns, 3 rows.
    assert shapes["images"] == (int(round(100 * (3 * (2.0 + 0.16 * 6 + 0.15) + 0.45))), 880)
    found = {}
    for path in tb.glob("events.out.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[value.tag] = value
    assert {"pr_curves", "ap_per_class", "images"} <= set(found)
    assert {f"pr_curve/{n}/pr_curves" for n in LABELS} <= set(found)
    for key, tag in (("pr_curves", "pr_curves"), ("ap", "ap_per_class"),
                     ("images", "images")):
        width, height, _ = tf.make_ndarray(found[tag].tensor)
        assert (int(height), int(width)) == shapes[key], key


def test_evaluate_errors(env, tmp_path, capsys):
    base = [f"--output={tmp_path / 'x.json'}"]
    code, _, err = run_main(evaluate, base + [f"--model={tmp_path / 'nope.keras'}",
                                              f"--data_dir={env['data_dir']}"], capsys)
    assert code == 2 and "model not found" in err
    code, _, err = run_main(evaluate, base + [f"--model={env['model_file']}",
                                              f"--data_dir={tmp_path / 'nodata'}"], capsys)
    assert code == 2 and "dataset_info.json not found" in err
    code, _, err = run_main(evaluate, base + [f"--model={env['model_file']}",
                                              f"--data_dir={env['data_dir']}",
                                              "--split=test"], capsys)
    assert code == 2 and "split 'test' not found" in err and "train, val" in err
    code, _, err = run_main(evaluate, base + [f"--model={env['model_file']}",
                                              f"--data_dir={env['data_dir4']}"], capsys)
    assert code == 2 and "label count mismatch" in err
    assert "3 labels" in err and "has 4" in err and "tree" in err
    assert not (tmp_path / "x.json").exists()


def test_evaluate_dependency_diagnostics(env, tmp_path, capsys):
    out = tmp_path / "eval.json"
    base = [f"--model={env['tuned_file']}", f"--data_dir={env['data_dir']}", f"--output={out}"]
    code, stdout, _ = run_main(evaluate, base + ["--thresholds=model"], capsys)
    assert code == 0 and "Dependency diagnostics" in stdout and "novel sets (%)" in stdout
    report = json.loads(out.read_text())
    # Against the train split's label sets read from its records, at the
    # thresholds the report used.
    _, records = read_records(env["data_dir"], "train")
    train = np.zeros((len(records), len(LABELS)))
    for row, r in enumerate(records):
        train[row, r["labels"]] = 1
    y, s = val_truth(env["data_dir"], env["model"])
    want = metrics.dependency_diagnostics(y, s, train, threshold=env["tuned"])
    got = report["diagnostics"]
    assert list(got)[:5] == ["train_split", *metrics.DEPENDENCY_KEYS]
    assert got["train_split"] == "train"
    for key in (*metrics.DEPENDENCY_KEYS, "cardinality_pred", "cardinality_true", "num_pairs"):
        assert got[key] == pytest.approx(want[key], nan_ok=True), key
    np.testing.assert_allclose(got["cooccurrence_pred"], want["cooccurrence_pred"])
    # The train split's 4 images hold {0}, {1}, {2}, {0, 2}: of the val
    # split's 12 true sets, {1, 2}, {}, {0, 1}, {0, 1, 2} (8 images) are novel.
    assert got["novel_set_rate_true"] == pytest.approx(8 / 12)

    code, stdout, _ = run_main(evaluate, base + ["--train_split="], capsys)
    assert code == 0 and "Dependency diagnostics" not in stdout
    assert "diagnostics" not in json.loads(out.read_text())
    code, _, err = run_main(evaluate, base + ["--train_split=test"], capsys)
    assert code == 2 and "--train_split 'test' not found" in err and "--train_split=''" in err


# --------------------------------------------------------------------------
# mltf.predict
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_folder(env):
    folder = env["root"] / "predict"
    write_image(folder / "a.jpg", 40, 30, seed=1)
    write_image(folder / "b.png", 25, 50, seed=2)
    write_image(folder / "sub" / "c.JPG", 33, 33, seed=3)
    write_corrupt(folder / "broken.jpg", "truncated")
    (folder / "notes.txt").write_text("not an image, not an image extension\n")
    try:
        from PIL import Image
        Image.fromarray(write_image(folder / "tmp.png", 21, 27, seed=4)).save(folder / "d.bmp")
        Image.fromarray(write_image(folder / "tmp.png", 30, 22, seed=5)).save(folder / "e.gif")
        os.remove(folder / "tmp.png")
    except ImportError:
        pass
    good = sorted(p for p in _walk(folder) if "broken" not in p)
    return str(folder), good


def _walk(folder):
    out = []
    for root, _, files in os.walk(folder):
        out += [os.path.join(root, f) for f in files
                if f.lower().endswith((".jpg", ".png", ".bmp", ".gif"))]
    return out


def expected_scores(model, files):
    _, x = independent_inputs([open(f, "rb").read() for f in files])
    return dict(zip(files, model_scores(model, x)))


def test_predict_folder_json_csv_table(env, image_folder, tmp_path, capsys):
    folder, good = image_folder
    model = env["model"]
    want = expected_scores(model, good)
    broken = os.path.join(folder, "broken.jpg")

    code, out, err = run_main(predict, [f"--model={env['tuned_file']}", "--format=json",
                                        "--batch_size=2", folder], capsys)
    assert code == 0
    assert "broken.jpg" in err and "not a decodable image" in err
    entries = json.loads(out)
    # Folders are walked in sorted order, subfolders after the files.
    assert [e["file"] for e in entries] == sorted(good + [broken])
    assert not any("notes.txt" in e["file"] for e in entries)
    tuned = env["tuned"]
    for e in entries:
        if e["file"] == broken:
            assert "error" in e and "scores" not in e
            continue
        assert list(e["scores"]) == LABELS
        s = np.array([e["scores"][n] for n in LABELS])
        np.testing.assert_allclose(s, want[e["file"]], atol=1e-5)
        # Default thresholds: the model's (tuned) ones.
        assert sorted(e["predicted"]) == sorted(
            n for n, v, t in zip(LABELS, s, tuned) if v >= t)

    out_file = tmp_path / "p.csv"
    code, _, err = run_main(predict, [f"--model={env['tuned_file']}", "--format=csv",
                                      f"--output={out_file}", folder], capsys)
    assert code == 0 and "broken.jpg" in err
    rows = list(csv.reader(io.StringIO(out_file.read_text())))
    assert rows[0] == ["file"] + LABELS
    assert sorted(r[0] for r in rows[1:]) == sorted(good)
    for r in rows[1:]:
        np.testing.assert_allclose([float(v) for v in r[1:]], want[r[0]], atol=1e-5)

    code, out, _ = run_main(predict, [f"--model={env['tuned_file']}", "--format=table",
                                      "--thresholds=0.5", "--top_k=2", folder], capsys)
    assert code == 0
    blocks = {}
    current = None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line
            blocks[current] = []
        else:
            blocks[current].append(line.strip())
    assert set(blocks) == set(good + [broken])
    assert blocks[broken][0].startswith("skipped:")
    for f in good:
        s = want[f]
        lines = blocks[f]
        predicted = [n for n, v in zip(LABELS, s) if v >= 0.5]  # --thresholds=0.5
        assert lines[0] == "predicted: " + (
            ", ".join(sorted(predicted, key=lambda n: -s[LABELS.index(n)])) or "(none)")
        assert lines[1] == "top 2:"
        top = [ln.split() for ln in lines[2:]]
        assert len(top) == 2
        order = np.argsort(-s)[:2]
        assert [t[0] for t in top] == [LABELS[j] for j in order]
        for t, j in zip(top, order):
            assert float(t[1]) == pytest.approx(s[j], abs=6e-5)
            assert (len(t) == 3) == bool(s[j] >= 0.5)


def test_predict_all_corrupt_exits_1(env, tmp_path):
    write_corrupt(tmp_path / "x.jpg")
    write_corrupt(tmp_path / "y.png", "truncated")
    proc = run_module(["mltf.predict", f"--model={env['model_file']}", "--format=json",
                       str(tmp_path / "x.jpg"), str(tmp_path / "y.png"),
                       str(tmp_path / "missing.jpg")])
    assert proc.returncode == 1, proc.stderr
    for name in ("x.jpg", "y.png", "missing.jpg"):
        assert name in proc.stderr
    entries = json.loads(proc.stdout)
    assert len(entries) == 3 and all("error" in e for e in entries)


# --------------------------------------------------------------------------
# mltf.export
# --------------------------------------------------------------------------

def test_export_round_trip_both_signatures(env, image_folder, tmp_path, capsys):
    out = tmp_path / "export"
    code, stdout, _ = run_main(export, [f"--model={env['tuned_file']}",
                                        f"--output_dir={out}"], capsys)
    assert code == 0, stdout
    info = json.loads((out / "export_info.json").read_text())
    assert info["label_names"] == LABELS and info["image_size"] == [SIZE, SIZE]
    assert info["thresholds"] == pytest.approx(env["tuned"].tolist())
    assert (out / "saved_model" / "assets" / "labels.txt").read_text().split("\n")[:3] == LABELS

    _, good = image_folder
    encoded = [open(f, "rb").read() for f in good]
    raw, x = independent_inputs(encoded)
    want = model_scores(env["model"], x)
    loaded = tf.saved_model.load(str(out / "saved_model"))
    assert {"serving_default", "serve_tensors", "labels"} <= set(loaded.signatures)

    by_bytes = loaded.signatures["serving_default"](images=tf.constant(encoded))
    np.testing.assert_allclose(by_bytes["probabilities"].numpy(), want, atol=1e-5)
    by_tensor = loaded.signatures["serve_tensors"](images=tf.constant(raw, tf.float32))
    np.testing.assert_allclose(by_tensor["probabilities"].numpy(), want, atol=1e-5)
    tuned = env["tuned"]
    np.testing.assert_array_equal(by_tensor["predicted"].numpy(),
                                  by_tensor["probabilities"].numpy() >= tuned)
    labels = loaded.signatures["labels"]()
    assert [n.decode() for n in labels["label_names"].numpy()] == LABELS
    np.testing.assert_allclose(labels["thresholds"].numpy(), tuned)

    copy = keras.saving.load_model(str(out / "model.keras"), compile=False)
    np.testing.assert_allclose(model_scores(copy, x), want, atol=1e-6)
    np.testing.assert_allclose(copy.thresholds.numpy(), tuned)

    # An existing export is kept unless --overwrite.
    code, _, err = run_main(export, [f"--model={env['model_file']}",
                                     f"--output_dir={out}"], capsys)
    assert code == 2 and "--overwrite" in err


# --------------------------------------------------------------------------
# Real JPEGs: MIML scene (skipped without ../shared/data)
# --------------------------------------------------------------------------

def test_real_jpegs_miml_scene(shared_data, tmp_path, capsys):
    from mltf.data import sources
    from mltf.data.sources.base import SourceOptions
    scene = os.path.join(shared_data, "miml-scene")
    with open(os.path.join(scene, "labels.csv")) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    picked = rows[::len(rows) // 20][:20]  # spread over the label blocks
    table = tmp_path / "subset.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in picked:
            w.writerow([os.path.join(scene, "images", r[0])] + r[1:])
    data = sources.load("csv", SourceOptions(csv=str(table)))
    writer.write_dataset(data, str(tmp_path / "ds"), val_fraction=0.5, progress=False)

    names = header[1:]
    model = build_model(names, seed=1)
    model_file = str(tmp_path / "scene.keras")
    model.save(model_file)
    report = evaluate.evaluate(model_file, str(tmp_path / "ds"), batch_size=4)
    _, records = read_records(str(tmp_path / "ds"), "val")
    assert report["metrics"]["num_examples"] == len(records) == 10
    _, x = independent_inputs([r["encoded"] for r in records])
    y = np.zeros((len(records), len(names)), np.float32)
    for row, r in enumerate(records):
        y[row, r["labels"]] = 1
    assert_metrics_equal(report["metrics"], metrics.compute_all(y, model_scores(model, x)))

    files = [os.path.join(scene, "images", r[0]) for r in picked[:5]]
    code, out, _ = run_main(predict, [f"--model={model_file}", "--format=json"] + files,
                            capsys)
    assert code == 0
    want = expected_scores(model, files)
    for e in json.loads(out):
        np.testing.assert_allclose([e["scores"][n] for n in names], want[e["file"]],
                                   atol=1e-5)
