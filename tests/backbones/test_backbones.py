"""Backbones: every family builds, trains one step, freezes, loads weights
(local files; ImageNet through a stubbed download), saves and reloads."""

import os

import gin
import h5py
import keras
import numpy as np
import pytest
from keras.src.utils import file_utils  # what keras.applications calls

from mltf import backbones
from mltf.backbones import build_backbone, registry
from pipelines import preprocessing

# The input scaling each built-in backbone expects (keras.applications'
# preprocess_input of its family; none where the model rescales inside).
BACKBONE_MODES = {
    "vgg16": "caffe",
    "vgg16_fc": "caffe",
    "resnet50": "caffe",
    "resnet101": "caffe",
    "resnet152": "caffe",
    "inception_v3": "tf",
    "mobilenet_v3_small": "none",
    "efficientnet_b0": "none",
    "efficientnet_lite0": "none",
    "efficientnet_lite1": "none",
    "efficientnet_lite2": "none",
    "small_cnn": "unit",
    "mlp": "none",
}

NUM_LABELS = 3

# name -> (smallest input shape, feature_dim with the default options)
FAMILIES = {
    "vgg16": ((32, 32, 3), 512),
    "vgg16_fc": ((32, 32, 3), 4096),
    "resnet50": ((32, 32, 3), 2048),
    "resnet101": ((32, 32, 3), 2048),
    "resnet152": ((32, 32, 3), 2048),
    "inception_v3": ((75, 75, 3), 2048),
    "mobilenet_v3_small": ((32, 32, 3), 576),
    "efficientnet_b0": ((32, 32, 3), 1280),
    "efficientnet_lite0": ((32, 32, 3), 1280),
    "small_cnn": ((32, 32, 3), 128),
    "mlp": ((20,), 256),
}

# keras.applications' no-top ImageNet files (keras/src/applications/*.py).
NOTOP_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet152": "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenet_v3_small": "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    "efficientnet_b0": "efficientnetb0_notop.h5",
}
# vgg16_fc keeps fc6/fc7: keras' include_top file (its 1000-way layer unused).
IMAGENET_FILES = dict(NOTOP_FILES,
                      vgg16_fc="vgg16_weights_tf_dim_ordering_tf_kernels.h5")


@pytest.fixture(autouse=True)
def no_gin_bindings():
    """build_backbone is gin-configurable: no bindings leak into these tests."""
    gin.clear_config()
    yield
    gin.clear_config()


def random_inputs(shape, batch=2, seed=0):
    """Images in [0, 255] (or features) and multi-hot labels."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(batch,) + tuple(shape)).astype("float32")
    y = (rng.uniform(size=(batch, NUM_LABELS)) < 0.5).astype("float32")
    return x, y


# keras.applications models train their one step eagerly: tracing the train
# step of a 150-300 layer model takes 35-50 s on 2 CPU cores, the eager step
# (the same computation) a few seconds. mltf's own backbones run as tf.function.
EAGER = {"vgg16", "resnet50", "resnet101", "resnet152", "inception_v3",
         "mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0"}


def with_head(backbone, input_shape, run_eagerly=False):
    """backbone -> Dense(NUM_LABELS) logits, compiled with binary CE."""
    inputs = keras.Input(shape=input_shape)
    logits = keras.layers.Dense(NUM_LABELS, name="head")(backbone(inputs))
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  run_eagerly=run_eagerly)
    return model


def features(model, x):
    """The model's inference output as numpy (an eager call, no tracing)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def bn_moving_stats(model):
    return [v for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


def fit_one_step(model, input_shape):
    x, y = random_inputs(input_shape)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    return history.history["loss"][0]


def write_legacy_h5(model, path):
    """Writes weights in keras.applications' legacy .h5 format."""
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def test_registry_and_preprocessing_modes():
    assert set(FAMILIES) <= set(backbones.BACKBONES)
    for name in FAMILIES:
        if name in BACKBONE_MODES:
            assert backbones.preprocessing_mode(name) == BACKBONE_MODES[name]
    assert backbones.preprocessing_mode("mlp") == "none"
    with pytest.raises(ValueError, match="resnet152"):
        backbones.preprocessing_mode("resnet18")


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "inception_v3",
                                  "mobilenet_v3_small", "efficientnet_b0",
                                  "efficientnet_lite0", "small_cnn", "mlp"])
def test_one_fit_step_trains_the_backbone(name):
    input_shape, feature_dim = FAMILIES[name]
    backbone = build_backbone(name, input_shape)
    assert backbone.name == name
    assert tuple(backbone.output.shape) == (None, feature_dim)
    assert features(backbone, random_inputs(input_shape)[0]).shape == (
        2, feature_dim)

    # In-model rescaling exactly when BACKBONE_MODES says "none" (images).
    rescaling = [layer for layer in backbone.layers
                 if isinstance(layer, keras.layers.Rescaling)]
    if name == "mlp":
        pass
    elif backbones.preprocessing_mode(name) == "none":
        assert backbone.layers[1] is rescaling[0]  # first op on [0, 255]
        scale, offset = {"mobilenet_v3_small": (1 / 127.5, -1.0),
                         "efficientnet_b0": (1 / 255.0, 0.0),
                         "efficientnet_lite0": (1 / 128.0, -127 / 128.0),
                         }[name]
        assert np.isclose(rescaling[0].scale, scale)
        assert np.isclose(rescaling[0].offset, offset)
    else:
        assert not rescaling

    model = with_head(backbone, input_shape, run_eagerly=name in EAGER)
    stem, bn_stats = backbone.trainable_weights[0], bn_moving_stats(backbone)
    before = snapshot([stem] + bn_stats + model.get_layer("head").weights)
    loss = fit_one_step(model, input_shape)
    after = snapshot([stem] + bn_stats + model.get_layer("head").weights)
    assert np.isfinite(loss)
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert changed[0], "the first backbone layer did not train"
    assert all(changed[-2:]), "the head did not train"
    if bn_stats:
        assert any(changed[1:1 + len(bn_stats)])


@pytest.mark.parametrize("name", ["resnet101", "resnet152"])
def test_deep_resnets_build(name):
    input_shape, feature_dim = FAMILIES[name]
    backbone = build_backbone(name, input_shape)
    assert backbone.name == name
    assert tuple(backbone.output.shape) == (None, feature_dim)


@pytest.mark.slow
@pytest.mark.parametrize("name,run_eagerly", [
    ("resnet101", True), ("resnet152", True),
    ("resnet50", False), ("inception_v3", False), ("efficientnet_b0", False)])
def test_fit_step_slow(name, run_eagerly):
    """The deep ResNets' step, and compiled (tf.function) steps."""
    input_shape, _ = FAMILIES[name]
    backbone = build_backbone(name, input_shape)
    stem = backbone.trainable_weights[0]
    before = np.array(stem.numpy())
    model = with_head(backbone, input_shape, run_eagerly=run_eagerly)
    assert np.isfinite(fit_one_step(model, input_shape))
    assert not np.array_equal(before, stem.numpy())


@pytest.mark.parametrize("name", ["small_cnn", "mobilenet_v3_small", "mlp"])
def test_frozen_backbone_does_not_change(name):
    input_shape, _ = FAMILIES[name]
    backbone = build_backbone(name, input_shape, trainable=False)
    assert backbone.trainable_weights == []
    bn_stats = bn_moving_stats(backbone)
    assert bool(bn_stats) == (name != "mlp")
    model = with_head(backbone, input_shape, run_eagerly=name in EAGER)
    before = snapshot(backbone.weights)
    head_before = snapshot(model.get_layer("head").weights)
    assert np.isfinite(fit_one_step(model, input_shape))
    for a, b in zip(before, snapshot(backbone.weights)):
        np.testing.assert_array_equal(a, b)  # BN moving statistics included
    assert not np.array_equal(head_before[0],
                              model.get_layer("head").weights[0].numpy())


@pytest.mark.parametrize("name", sorted(IMAGENET_FILES))
def test_offline_imagenet_names_the_file_to_place(name, monkeypatch):
    requested = []

    def offline(fname, origin=None, **kwargs):
        requested.append((fname, kwargs.get("cache_subdir")))
        raise Exception(f"URL fetch failure on {origin}: None -- "
                        "[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    input_shape, _ = FAMILIES[name]
    with pytest.raises(backbones.WeightsUnavailableError) as info:
        build_backbone(name, input_shape, weights="imagenet")
    assert requested == [(IMAGENET_FILES[name], "models")]  # what keras wants
    message = str(info.value)
    keras_home = os.environ.get("KERAS_HOME",
                                os.path.join(os.path.expanduser("~"), ".keras"))
    expected = os.path.join(keras_home, "models", IMAGENET_FILES[name])
    assert backbones.imagenet_weights_path(name) == expected
    assert expected in message
    assert f"weights='/path/to/{IMAGENET_FILES[name]}'" in message
    assert "URL fetch failure" in message
    assert isinstance(info.value, RuntimeError)


def test_offline_imagenet_file_follows_mobilenet_options(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/x.h5")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(backbones.WeightsUnavailableError,
                       match="weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"):
        build_backbone("mobilenet_v3_small", (32, 32, 3), weights="imagenet",
                       alpha=0.75)


def test_other_errors_with_imagenet_are_not_disguised(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("not a download problem")

    monkeypatch.setattr(file_utils, "get_file", broken)
    with pytest.raises(KeyError):
        build_backbone("vgg16", (32, 32, 3), weights="imagenet")


@pytest.mark.parametrize("name", ["small_cnn", "mlp"])
def test_imagenet_for_own_backbones_is_a_clear_error(name):
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_backbone(name, FAMILIES[name][0], weights="imagenet")


def test_imagenet_loads_the_cached_file(tmp_path, monkeypatch):
    source = keras.applications.VGG16(include_top=False, weights=None,
                                      input_shape=(32, 32, 3), pooling="avg")
    path = write_legacy_h5(source, tmp_path / NOTOP_FILES["vgg16"])
    monkeypatch.setattr(file_utils, "get_file", lambda fname, *a, **k: path)
    backbone = build_backbone("vgg16", (32, 32, 3), weights="imagenet")
    for a, b in zip(source.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_efficientnet_imagenet_scaling_matches_keras(tmp_path, monkeypatch):
    """keras adds an extra Rescaling for weights="imagenet" only; mltf folds
    it into the Normalization layer, for the cached file and a local copy."""
    shape = (32, 32, 3)
    source = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                               input_shape=shape, pooling="avg")
    norm = [layer for layer in source.layers
            if isinstance(layer, keras.layers.Normalization)][0]
    norm.adapt_mean.assign([0.485, 0.456, 0.406])  # as in the official file
    norm.adapt_variance.assign(np.square([0.229, 0.224, 0.225]))
    official = write_legacy_h5(source, tmp_path / NOTOP_FILES["efficientnet_b0"])
    monkeypatch.setattr(file_utils, "get_file", lambda fname, *a, **k: official)

    x = random_inputs(shape)[0]
    reference = features(keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=shape,
        pooling="avg"), x)
    tolerance = 1e-4 * np.abs(reference).max()  # random-init outputs are tiny
    from_cache = build_backbone("efficientnet_b0", shape, weights="imagenet")
    from_file = build_backbone("efficientnet_b0", shape, weights=official)
    saved = str(tmp_path / "b0.weights.h5")
    from_cache.save_weights(saved)
    reloaded = build_backbone("efficientnet_b0", shape, weights=saved)
    for model in (from_cache, from_file, reloaded):
        np.testing.assert_allclose(features(model, x), reference, rtol=1e-4,
                                   atol=tolerance)
    # Without the fold, loading the official file would not match.
    unfolded = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=shape, pooling="avg")
    unfolded.load_weights(official)
    assert np.abs(features(unfolded, x) - reference).max() > 100 * tolerance


@pytest.mark.parametrize("name", ["vgg16", "small_cnn", "mlp"])
def test_local_weights_round_trip(name, tmp_path):
    input_shape, _ = FAMILIES[name]
    original = build_backbone(name, input_shape)
    path = tmp_path / f"{name}.weights.h5"
    original.save_weights(str(path))
    loaded = build_backbone(name, input_shape, weights=path)  # a PathLike
    fresh = build_backbone(name, input_shape)
    assert len(loaded.weights) == len(original.weights)
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in
                   zip(original.get_weights(), fresh.get_weights()))


def test_missing_weights_file_is_named(tmp_path):
    path = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        build_backbone("small_cnn", (32, 32, 3), weights=path)


def test_weights_of_another_architecture_are_named(tmp_path):
    path = str(tmp_path / "wide.weights.h5")
    build_backbone("small_cnn", (32, 32, 3), widths=(8, 16)).save_weights(path)
    with pytest.raises(ValueError, match="wide.weights.h5"):
        build_backbone("small_cnn", (32, 32, 3), weights=path, widths=(8, 32))


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError) as info:
        build_backbone("resnet18", (32, 32, 3))
    for name in FAMILIES:
        assert name in str(info.value)


@pytest.mark.parametrize("name,shape,minimum", [
    ("inception_v3", (74, 80, 3), "75x75"),
    ("vgg16", (32, 31, 3), "32x32"),
    ("efficientnet_b0", (16, 16, 3), "32x32"),
])
def test_too_small_input_names_the_minimum(name, shape, minimum):
    with pytest.raises(ValueError, match=f"{name}.*at least {minimum}"):
        build_backbone(name, shape)


def test_input_rank_is_checked():
    with pytest.raises(ValueError, match="feature vectors"):
        build_backbone("mlp", (32, 32, 3))
    with pytest.raises(ValueError, match="takes images"):
        build_backbone("small_cnn", (20,))


def test_pooling_options_and_sizes():
    assert tuple(build_backbone("small_cnn", (None, None, 3), pooling="max",
                                widths=(8, 16)).output.shape) == (None, 16)
    assert tuple(build_backbone("small_cnn", (32, 32, 3), pooling=None,
                                widths=(8, 16)).output.shape) == (None, 8, 8, 16)
    assert tuple(build_backbone("vgg16", (32, 32, 3),
                                pooling=None).output.shape) == (None, 1, 1, 512)
    assert tuple(build_backbone("mlp", (20,), hidden_sizes=(64, 32),
                                dropout=0.0).output.shape) == (None, 32)
    with pytest.raises(ValueError, match="pooling"):
        build_backbone("small_cnn", (32, 32, 3), pooling="sum")


def test_settings_build_backbone_owns_are_refused():
    with pytest.raises(ValueError, match="include_preprocessing"):
        build_backbone("mobilenet_v3_small", (32, 32, 3),
                       include_preprocessing=False)


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "vgg16",
                                  "mobilenet_v3_small", "efficientnet_b0",
                                  "efficientnet_lite0"])
def test_save_and_load_model(name, tmp_path):
    input_shape, _ = FAMILIES[name]
    backbone = build_backbone(name, input_shape)
    path = str(tmp_path / f"{name}.keras")
    backbone.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == name
    x = random_inputs(input_shape)[0]
    expected = features(backbone, x)
    np.testing.assert_allclose(features(loaded, x), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "inception_v3"])
def test_save_and_load_model_slow(name, tmp_path):
    test_save_and_load_model(name, tmp_path)


def test_gin_binds_the_factory():
    gin.parse_config([
        'mltf.build_backbone.name = "small_cnn"',
        "mltf.build_backbone.input_shape = (32, 32, 3)",
        "mltf.build_backbone.widths = (8, 16)",
        "mltf.build_backbone.trainable = False",
    ])
    for backbone in (gin.get_configurable("mltf.build_backbone")(),
                     build_backbone(), build_backbone(input_shape=(16, 16, 3))):
        assert backbone.name == "small_cnn"
        assert tuple(backbone.output.shape) == (None, 16)
        assert not backbone.trainable


def test_register_backbone(monkeypatch):
    monkeypatch.setattr(registry, "BACKBONES", dict(backbones.BACKBONES))
    monkeypatch.setattr(preprocessing, "_ALIASES",
                        dict(preprocessing._ALIASES))

    def tiny(input_shape, *, weights=None, pooling="avg", name=None, units=4):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Conv2D(units, 3)(inputs)
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x),
                           name=name)

    backbones.register_backbone("tiny", tiny, preprocessing="unit", min_size=8)
    assert backbones.preprocessing_mode("tiny") == "unit"
    backbone = build_backbone("tiny", (8, 8, 3), units=5)
    assert backbone.name == "tiny" and tuple(backbone.output.shape) == (None, 5)
    with pytest.raises(ValueError, match="at least 8x8"):
        build_backbone("tiny", (4, 4, 3))
    with pytest.raises(ValueError, match="already registered"):
        backbones.register_backbone("tiny", tiny)
    with pytest.raises(ValueError, match="preprocessing"):
        backbones.register_backbone("tiny2", tiny, preprocessing="imagenet")
    assert "tiny2" not in registry.BACKBONES


def test_a_registered_backbone_is_a_preprocessing_name(monkeypatch):
    """The scaling is declared once, at registration: the input pipeline
    then takes the backbone's name as well as "auto" does."""
    monkeypatch.setattr(registry, "BACKBONES", dict(backbones.BACKBONES))
    monkeypatch.setattr(preprocessing, "_ALIASES",
                        dict(preprocessing._ALIASES))
    with pytest.raises(ValueError, match="unknown preprocessing 'tiny'"):
        preprocessing.mode_for("tiny")
    backbones.register_backbone(
        "tiny", lambda input_shape, **kwargs: None, preprocessing="tf")
    assert preprocessing.mode_for("tiny") == "tf"
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    np.testing.assert_allclose(preprocessing.preprocess(x, "tiny"), 1.0)
    for name, mode in BACKBONE_MODES.items():
        assert preprocessing.mode_for(name) == mode


def test_without_backbones_a_name_error_says_what_to_import(monkeypatch):
    monkeypatch.setattr(preprocessing, "_ALIASES", {})
    with pytest.raises(ValueError, match="import mltf.backbones") as info:
        preprocessing.mode_for("vgg16")
    for mode in preprocessing.MODES:
        assert mode in str(info.value)


def test_embedding_layer_keeps_name_and_stays_trainable():
    from mltf import inference, models
    plain = build_backbone("small_cnn", (16, 16, 3), widths=(4, 8), trainable=False)
    b = build_backbone("small_cnn", (16, 16, 3), widths=(4, 8), trainable=False,
                       embedding_dim=12)
    assert b.name == "small_cnn" and b.output_shape == (None, 12)
    # Frozen backbone, trainable new layer: only the embedding's kernel and bias.
    assert [v.path.split("/")[-2:] for v in b.trainable_variables] == [
        ["embedding", "kernel"], ["embedding", "bias"]]
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    inner = b.get_layer("small_cnn")
    inner.set_weights(plain.get_weights())
    kernel, bias = b.get_layer("embedding").get_weights()
    want = np.maximum(np.asarray(plain(x)) @ kernel + bias, 0.0)
    np.testing.assert_allclose(np.asarray(b(x)), want, rtol=1e-5, atol=1e-6)
    # Inference still finds the input size and scaling from the name.
    clf = models.MultiLabelClassifier(b, 3)
    clf.build((None, 16, 16, 3))
    spec = inference.inference_spec(clf)
    assert spec.image_size == (16, 16) and spec.backbone == "small_cnn"
    with pytest.raises(ValueError, match="embedding_dim"):
        build_backbone("small_cnn", (16, 16, 3), widths=(4,), embedding_dim=0)
