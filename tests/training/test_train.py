"""python -m mltf.train end to end on tiny data: run folder contents, gin
errors, two replicas with XLA, kill -9 and resume, the COCO config."""

import csv
import json
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest

from conftest import ROOT, tiny_bindings, train_in_process
from test_run_state import event_scalars
from mltf.data import schema, sources, writer
from mltf.data.sources import SourceOptions

def run_train(args, env_extra=None, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "mltf.train", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_train_writes_a_complete_run_folder(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLTF_FINAL_FIGURES", "1")  # conftest turns them off
    from mltf import backbones, metrics, train  # noqa: F401  (gin registrations)
    from mltf.training import gin_setup
    import pipelines  # noqa: F401
    # Every configurable registered before the config locks (run alone, no
    # earlier test has imported the methods).
    gin_setup.register_all()
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings(
            [os.path.join(ROOT, "configs", "demo.gin")],
            tiny_bindings(demo_dir, **{"mltf.train.xla": False}),
            skip_unknown=False)
        results = train.train(str(tmp_path))
    finally:
        gin.clear_config()
    names = set(os.listdir(tmp_path))
    assert {"operative_config.gin", "metrics.json", "model.keras", "training_log.csv",
            "tensorboard", "checkpoints"} <= names
    assert "backup" not in names  # BackupAndRestore removes it after a finished run
    assert {"last.keras", "best.keras"} <= set(os.listdir(tmp_path / "checkpoints"))
    assert "train.epochs = 2" in (tmp_path / "operative_config.gin").read_text()
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["metrics"]) == set(metrics.RESULT_KEYS)
    assert set(report["metrics_tuned"]) == set(metrics.RESULT_KEYS)
    assert report["metrics"] == pytest.approx(results, nan_ok=True)
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    set_keys = {"example_P", "example_R", "example_F1", "subset_accuracy", "jaccard",
                "labels_per_image_pred", "labels_per_image_true"}
    assert {"loss", "val_mAP", "val_CF1", "val_loss", "learning_rate",
            *(f"val_{k}" for k in set_keys)} <= set(rows[0])
    tags = event_scalars(tmp_path / "tensorboard")
    assert {f"validation/epoch_{k}" for k in set_keys} <= set(tags)
    # The saved model reproduces the reported metrics (independent recomputation).
    model = keras.models.load_model(tmp_path / "model.keras")
    from mltf.inference import predict_dataset
    from pipelines import InputConfig, make_dataset
    ds = make_dataset(InputConfig(demo_dir, "val", batch_size=16, training=False,
                                  image_size=24, preprocessing="unit"))
    y, s = predict_dataset(model, ds)
    assert metrics.compute_all(y, s)["mAP"] == pytest.approx(results["mAP"], abs=1e-6)
    np.testing.assert_allclose(model.thresholds.numpy(), report["thresholds"])
    # metrics_tuned is what the saved thresholds give, and the set metrics
    # follow the thresholds (0.5 and tuned give different sets here).
    pred = s >= model.thresholds.numpy()
    assert (pred != (s >= 0.5)).any()
    assert report["metrics_tuned"] == pytest.approx(
        metrics.compute_all(y, s, threshold=model.thresholds.numpy()), nan_ok=True, abs=1e-6)
    assert report["metrics_tuned"]["subset_accuracy"] == pytest.approx(
        float((pred == y.astype(bool)).all(axis=1).mean()), abs=1e-6)
    events = [f for _, _, fs in os.walk(tmp_path / "tensorboard") for f in fs
              if f.startswith("events")]
    assert events
    # The final evaluation's figures, at the last epoch's count as the step;
    # the grid holds the val split's first 16 images at the saved thresholds.
    final = event_scalars(tmp_path / "tensorboard" / "final")
    names = report["label_names"]
    assert set(final) == {"./pr_curves", "./ap_per_class", "./images",
                          *(f"./pr_curve/{n}/pr_curves" for n in names)}
    assert all(steps == [2] for steps in final.values())
    from mltf.metrics import figures
    from mltf.training import pictures
    ids, _, _ = predict_dataset(model, make_dataset(InputConfig(
        demo_dir, "val", batch_size=16, training=False, image_size=24,
        preprocessing="unit", with_ids=True)), with_ids=True)
    want = figures.image_grid_figure(
        pictures.read_images(demo_dir, "val", ids[:16], schema.read_info(demo_dir)),
        y, s, model.thresholds.numpy(), names)
    grid = final_image(tmp_path / "tensorboard" / "final", "images")
    np.testing.assert_array_equal(grid, figures.to_rgb(want))


def final_image(folder, tag):
    """The RGB image of ``tag`` in the event files of ``folder``."""
    import tensorflow as tf
    for path in folder.glob("events.out.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == tag:
                    return tf.io.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
    raise AssertionError(f"no {tag} in {folder}")


def test_gin_typo_names_the_binding(demo_dir, tmp_path):
    proc = run_train(["--config=configs/demo.gin", f"--model_dir={tmp_path}",
                      "--gin_bindings=mltf.train.epoch = 2"])
    assert proc.returncode == 2
    assert "epoch" in proc.stderr and "mltf.train" in proc.stderr
    proc = run_train(["--config=configs/nope.gin", f"--model_dir={tmp_path}"])
    assert proc.returncode == 2 and "configs/nope.gin" in proc.stderr


def test_batch_must_divide_by_replicas(demo_dir, tmp_path):
    proc = run_train(["--config=configs/demo.gin", f"--model_dir={tmp_path}",
                      *[f"--gin_bindings={b}" for b in tiny_bindings(
                          demo_dir, **{"pipelines.InputConfig.batch_size": 7,
                                       "mltf.train.strategy": "'cpu:2'"})]])
    assert proc.returncode != 0
    assert "global batch size 7 must divide by the 2 replicas" in proc.stderr


def test_two_replicas_keep_xla(demo_dir, tmp_path):
    proc = run_train(["--config=configs/demo.gin", f"--model_dir={tmp_path}",
                      *[f"--gin_bindings={b}" for b in tiny_bindings(
                          demo_dir, **{"mltf.train.strategy": "'cpu:2'",
                                       "mltf.train.xla": True,
                                       "mltf.train.epochs": 1})]],
                     env_extra={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Compiled cluster using XLA" in proc.stderr  # TF's own log line
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["replicas"] == 2


# The COCO source and VGG-16 on a tiny tree also run in the default
# test_vgg16_retdm_paper_configs_run_on_a_tiny_coco_tree[coco_vgg16_retdm.gin].
@pytest.mark.slow
def test_coco_vgg16_config_runs_on_a_tiny_coco_tree(tmp_path):
    from conftest import coco_tree
    root = tmp_path / "coco"
    coco_tree(root)
    out = tmp_path / "records"
    data = sources.load("coco", SourceOptions(data_dir=str(root)))
    writer.write_dataset(data, str(out), progress=False)
    proc = run_train(["--config=configs/coco_vgg16.gin", f"--model_dir={tmp_path / 'run'}",
                      f"--gin_bindings=pipelines.InputConfig.data_dir = '{out}'",
                      "--gin_bindings=mltf.build_backbone.weights = None",
                      "--gin_bindings=pipelines.InputConfig.image_size = 32",
                      "--gin_bindings=pipelines.InputConfig.resize_size = 40",
                      "--gin_bindings=pipelines.InputConfig.crop_sizes = (40, 32)",
                      "--gin_bindings=pipelines.InputConfig.batch_size = 2",
                      "--gin_bindings=mltf.train.epochs = 1",
                      "--gin_bindings=mltf.train.steps_per_epoch = 1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["label_names"] == data.label_names
    assert "build_backbone.name = 'vgg16_fc'" in (
        tmp_path / "run" / "operative_config.gin").read_text()
    backbone = keras.models.load_model(tmp_path / "run" / "model.keras").backbone
    assert backbone.name == "vgg16_fc"  # the papers' VGG-16: fc6 and fc7 of 4096
    assert [backbone.get_layer(n).units for n in ("fc1", "fc2")] == [4096, 4096]
    # Table 1's WGAN-gp config, from that BCE generator.
    proc = run_train(["--config=configs/coco_vgg16_wgangp.gin",
                      f"--model_dir={tmp_path / 'gan'}",
                      f"--gin_bindings=pipelines.InputConfig.data_dir = '{out}'",
                      "--gin_bindings=mltf.train.initial_model = "
                      f"'{tmp_path / 'run' / 'model.keras'}'",
                      "--gin_bindings=pipelines.InputConfig.image_size = 32",
                      "--gin_bindings=pipelines.InputConfig.resize_size = 40",
                      "--gin_bindings=pipelines.InputConfig.crop_sizes = (40, 32)",
                      "--gin_bindings=pipelines.InputConfig.batch_size = 1",
                      "--gin_bindings=mltf.build_critic.depth = 2",
                      # The generator has random weights and there is no
                      # network: not the paper's ImageNet fext.
                      "--gin_bindings=mltf.train.fext = 'generator'",
                      "--gin_bindings=mltf.train.epochs = 1",
                      "--gin_bindings=mltf.train.steps_per_epoch = 1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gan" / "metrics.json").read_text())
    assert report["method"] == "wgan_gp" and report["global_batch"] == 10


def test_finished_run_is_not_mixed_with_a_new_one(tmp_path):
    from mltf.train import prepare_run_dir
    assert prepare_run_dir(str(tmp_path), False) == "new"
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_run_dir(str(tmp_path), False)
    assert prepare_run_dir(str(tmp_path), True) == "overwrite"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]  # only run files removed
    (tmp_path / "backup").mkdir()
    assert prepare_run_dir(str(tmp_path), False) == "resume"


def test_wgan_gp_from_a_bce_checkpoint_and_with_pretraining(demo_dir, tmp_path):
    from mltf import models
    small = tiny_bindings(demo_dir, **{"mltf.train.epochs": 1})
    train_in_process("demo.gin", tmp_path / "bce", small)
    wgan_bindings = small + [f"mltf.train.initial_model = '{tmp_path / 'bce' / 'model.keras'}'",
                             "mltf.build_critic.depth = 2",
                             "mltf.build_critic.hidden_dim = 16",
                             "pipelines.InputConfig.batch_size = 4"]
    train_in_process("demo_wgangp.gin", tmp_path / "gan", wgan_bindings)
    report = json.loads((tmp_path / "gan" / "metrics.json").read_text())
    assert report["method"] == "wgan_gp" and report["global_batch"] == 40
    assert report["steps_per_epoch"] == 96 // 40
    rows = list(csv.DictReader(open(tmp_path / "gan" / "training_log.csv")))
    assert {"d_real", "d_generated", "d_mismatched", "wasserstein", "gradient_penalty",
            "adversarial_loss", "bce", "labels_per_image", "val_mAP",
            "learning_rate_critic", "learning_rate_generator"} <= set(rows[0])
    # Inference gets the generator alone, as for a BCE run.
    model = keras.models.load_model(tmp_path / "gan" / "model.keras")
    assert isinstance(model, models.MultiLabelClassifier)
    # One config can also do both phases: BCE pretraining, then the critic.
    both = wgan_bindings[:-4] + ["mltf.train.initial_model = None",
                                 "mltf.train.pretrain_epochs = 1",
                                 "mltf.build_critic.depth = 1",
                                 "pipelines.InputConfig.batch_size = 4"]
    train_in_process("demo_wgangp.gin", tmp_path / "both", both)
    assert (tmp_path / "both" / "pretrained.keras").exists()
    assert len((tmp_path / "both" / "pretrain_log.csv").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "both" / "metrics.json").read_text())["method"] == "wgan_gp"


def _tiny_arff(tmp_path, n_train=48, n_test=24, seed=0):
    """A MULAN-style ARFF pair: 8 features, 3 labels that depend on them."""
    rng = np.random.default_rng(seed)
    header = ["@relation tiny"] + [f"@attribute f{i} numeric" for i in range(8)]
    header += [f"@attribute L{j} {{0,1}}" for j in range(3)] + ["@data"]
    paths = []
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.random((n, 8))
        y = (x[:, :3] + 0.3 * rng.random((n, 3)) > 0.7).astype(int)
        rows = [",".join([*(f"{v:.4f}" for v in xi), *(str(v) for v in yi)])
                for xi, yi in zip(x, y)]
        path = tmp_path / f"tiny-{name}.arff"
        path.write_text("\n".join(header + rows) + "\n")
        paths.append(str(path))
    data = sources.load("arff", SourceOptions(arff_train=paths[0], arff_test=paths[1],
                                              num_labels=3))
    out = tmp_path / "features"
    writer.write_dataset(data, str(out), progress=False)
    return str(out)


def test_retdm_runs_its_three_stages_on_features(tmp_path):
    from mltf import models
    data_dir = _tiny_arff(tmp_path)
    bindings = [f"pipelines.InputConfig.data_dir = '{data_dir}'",
                "pipelines.InputConfig.batch_size = 8",
                "mltf.build_backbone.hidden_sizes = (16,)",
                "mltf.build_backbone.embedding_dim = 8",
                "mltf.build_retdm.label_units = 8",
                "mltf.build_retdm.k = 3",
                "mltf.build_retdm.classification_epochs = 1",
                "mltf.build_retdm.embedding_epochs = 1",
                "mltf.train.epochs = 3",
                "mltf.train.callbacks = [@keras.callbacks.ReduceLROnPlateau()]"]
    for config in ("mulan_scene_mlp_retdm.gin", "mulan_scene_mlp_retdm_one_way.gin"):
        run = tmp_path / config
        train_in_process(config, run, bindings)
        rows = list(csv.DictReader(open(run / "training_log.csv")))
        assert [float(r["retdm_stage"]) for r in rows] == [1.0, 2.0, 3.0]
        assert {"bce", "j1", "j2", "reconstruction", "j1_active", "j2_active",
                "bank_age", "bank_filled", "val_mAP", "learning_rate"} <= set(rows[0])
        # Stage 2 trains the label nets only: the classifier's val metrics stay.
        assert rows[1]["val_mAP"] == rows[0]["val_mAP"]
        assert rows[1]["val_loss"] == rows[0]["val_loss"]
        report = json.loads((run / "metrics.json").read_text())
        assert report["method"] == "retdm"
        assert report["retdm"]["two_way"] == (config == "mulan_scene_mlp_retdm.gin")
        two_way = report["retdm"]["two_way"]
        assert (float(rows[2]["j2"]) > 0) == two_way
        # Inference gets the classifier alone, as for a BCE run.
        model = keras.models.load_model(run / "model.keras")
        assert isinstance(model, models.MultiLabelClassifier)
        assert model.backbone.name == "mlp"
        assert "build_retdm.alpha = 0.01" in (run / "operative_config.gin").read_text()


def test_retdm_image_config_on_demo_images(demo_dir, tmp_path):
    bindings = tiny_bindings(demo_dir, **{
        "mltf.build_backbone.embedding_dim": 16,
        "mltf.build_retdm.label_units": 16,
        "mltf.build_retdm.classification_epochs": 1,
        "mltf.build_retdm.embedding_epochs": 0,
        "mltf.train.epochs": 2,
        "mltf.train.steps_per_epoch": 2,
        "pipelines.InputConfig.crop_sizes": (32, 24)})
    train_in_process("miml_scene_small_cnn_retdm.gin", tmp_path / "run", bindings)
    rows = list(csv.DictReader(open(tmp_path / "run" / "training_log.csv")))
    assert [float(r["retdm_stage"]) for r in rows] == [1.0, 3.0]


def test_retdm_refuses_pretrain_epochs(demo_dir, tmp_path):
    bindings = tiny_bindings(demo_dir, **{"mltf.train.pretrain_epochs": 1})
    with pytest.raises(ValueError, match="classification_epochs"):
        train_in_process("miml_scene_small_cnn_retdm.gin", tmp_path / "run", bindings)


@pytest.mark.parametrize("config", [
    "coco_vgg16_retdm.gin",
    # The one-way variant (two_way = False, unit-tested in tests/methods) and
    # the same paper_retdm.gin on other data folders: behind -m slow (time).
    pytest.param("coco_vgg16_retdm_one_way.gin", marks=pytest.mark.slow),
    pytest.param("scene_vgg16_retdm.gin", marks=pytest.mark.slow),
    pytest.param("mirflickr_vgg16_retdm.gin", marks=pytest.mark.slow)])
def test_vgg16_retdm_paper_configs_run_on_a_tiny_coco_tree(config, tmp_path):
    """The paper's RETDM configs as written (VGG-16, Phi_cnn = fc6 and fc7
    resized to 512, SGD and its plateau schedule), on tiny COCO records with
    random weights."""
    from conftest import coco_tree
    root = tmp_path / "coco"
    coco_tree(root)
    out = tmp_path / "records"
    data = sources.load("coco", SourceOptions(data_dir=str(root)))
    writer.write_dataset(data, str(out), progress=False)
    bindings = [f"pipelines.InputConfig.data_dir = '{out}'",
                "eval/pipelines.InputConfig.split = 'val'",
                "mltf.build_backbone.weights = None",
                "pipelines.InputConfig.image_size = 32",
                "pipelines.InputConfig.resize_size = 40",
                "pipelines.InputConfig.crop_sizes = (40, 32)",
                "pipelines.InputConfig.batch_size = 2",
                "mltf.build_retdm.k = 2",
                "mltf.build_retdm.classification_epochs = 1",
                "mltf.build_retdm.embedding_epochs = 1",
                "mltf.train.epochs = 3",
                "mltf.train.steps_per_epoch = 1"]
    train_in_process(config, tmp_path / "run", bindings)
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["method"] == "retdm"
    assert report["retdm"]["two_way"] == ("one_way" not in config)
    rows = list(csv.DictReader(open(tmp_path / "run" / "training_log.csv")))
    assert [float(r["retdm_stage"]) for r in rows] == [1.0, 2.0, 3.0]
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert model.backbone.name == "vgg16_fc"
    assert model.backbone.output.shape[-1] == 512  # Phi_cnn's layer: fc7 itself
    assert [model.backbone.get_layer(n).units for n in ("fc1", "fc2")] == [4096, 512]
    assert not any(layer.name == "embedding" for layer in model.backbone.layers)


def test_checkpoint_mode_minimises_losses_and_ranking_errors():
    from mltf.training.callbacks import checkpoint_mode
    assert [checkpoint_mode(m) for m in ("val_mAP", "val_loss", "val_hamming_loss",
                                         "val_one_error", "val_coverage", "val_CF1")] == [
        "max", "min", "min", "min", "min", "max"]


def test_a_damaged_initial_model_is_a_clear_error(demo_dir, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    proc = run_train(["--config=configs/demo.gin", f"--model_dir={tmp_path / 'run'}",
                      *[f"--gin_bindings={b}" for b in tiny_bindings(
                          demo_dir, **{"mltf.train.initial_model": f"'{bad}'"})]])
    assert proc.returncode == 1
    assert f"{bad} cannot be loaded as a Keras model" in proc.stderr
    assert "Traceback" not in proc.stderr
