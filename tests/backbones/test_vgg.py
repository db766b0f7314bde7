"""vgg16_fc, the papers' VGG-16 (fc6/fc7 kept): its layers, dropout, and keras'
include_top ImageNet file mapped by layer name (a 32 px stand-in of it)."""

import glob
import os
import shutil

import gin
import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group
from keras.src.utils import file_utils  # what mltf.backbones.vgg calls

from conftest import ROOT, bound_parameters
from mltf import backbones
from mltf.backbones import build_backbone
from test_backbones import features, random_inputs, write_legacy_h5

SHAPE = (32, 32, 3)  # conv5 pools to 1x1x512: fc1's kernel has 512 rows
INCLUDE_TOP = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
CONVS = [f"block{b}_conv{c}" for b, n in enumerate((2, 2, 3, 3, 3), 1)
         for c in range(1, n + 1)]


@pytest.fixture(autouse=True)
def no_gin_bindings():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(scope="module")
def include_top(tmp_path_factory):
    """keras' VGG16 with its top at 32 px (random weights, non-zero biases),
    written as keras' legacy include_top .h5, and that source model."""
    source = keras.applications.VGG16(include_top=True, weights=None,
                                      input_shape=SHAPE, classes=10)
    rng = np.random.default_rng(0)
    for layer in source.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.01, bias.shape)])
    path = write_legacy_h5(source, tmp_path_factory.mktemp("h5") / INCLUDE_TOP)
    return path, source


def fc7_of(source):
    """keras' own include_top model cut at fc2: the independent reference."""
    return keras.Model(source.input, source.get_layer("fc2").output)


def test_layers_are_keras_vgg16_with_fc6_and_fc7():
    model = build_backbone("vgg16_fc", SHAPE, dropout=0.0)
    keras_top = keras.applications.VGG16(include_top=True, weights=None,
                                         input_shape=SHAPE, classes=10)
    names = [layer.name for layer in model.layers[1:]]
    assert names == [layer.name for layer in keras_top.layers[1:-1]]  # no predictions
    assert [n for n in names if "conv" in n] == CONVS
    assert model.name == "vgg16_fc"
    assert tuple(model.get_layer("fc1").kernel.shape) == (512, 4096)
    assert tuple(model.get_layer("fc2").kernel.shape) == (4096, 4096)
    assert tuple(model.output.shape) == (None, 4096)
    assert backbones.preprocessing_mode("vgg16_fc") == "caffe"
    # relu(relu(flatten(conv5) W1 + b1) W2 + b2), by hand from conv5.
    x = random_inputs(SHAPE)[0]
    conv5 = keras.Model(model.input, model.get_layer("block5_pool").output)
    (w1, b1), (w2, b2) = (model.get_layer(n).get_weights() for n in ("fc1", "fc2"))
    h = np.maximum(features(conv5, x).reshape(2, -1) @ w1 + b1, 0)
    np.testing.assert_allclose(features(model, x), np.maximum(h @ w2 + b2, 0),
                               rtol=1e-4, atol=1e-5)


def test_fc7_resized_for_phi_cnn():
    model = build_backbone("vgg16_fc", SHAPE, fc7_units=512)
    assert tuple(model.get_layer("fc1").kernel.shape) == (512, 4096)
    assert tuple(model.get_layer("fc2").kernel.shape) == (4096, 512)
    assert tuple(model.output.shape) == (None, 512)
    assert features(model, random_inputs(SHAPE)[0]).shape == (2, 512)


def test_dropout_after_fc6_and_fc7_only_in_training():
    with_dropout = build_backbone("vgg16_fc", SHAPE)
    dropouts = [(layer.name, layer.rate) for layer in with_dropout.layers
                if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [("fc1_dropout", 0.5), ("fc2_dropout", 0.5)]
    names = [layer.name for layer in with_dropout.layers]
    assert names[-4:] == ["fc1", "fc1_dropout", "fc2", "fc2_dropout"]
    plain = build_backbone("vgg16_fc", SHAPE, dropout=0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)
    plain.set_weights(with_dropout.get_weights())  # dropout has no weights
    x = random_inputs(SHAPE)[0]
    np.testing.assert_array_equal(features(with_dropout, x), features(plain, x))
    trained = keras.ops.convert_to_numpy(with_dropout(x, training=True))
    assert not np.allclose(trained, features(plain, x))


def test_fixed_input_size_and_ignored_pooling():
    with pytest.raises(ValueError, match="vgg16_fc.*fixed height and width"):
        build_backbone("vgg16_fc", (None, None, 3))
    assert tuple(build_backbone("vgg16_fc", SHAPE, pooling=None,
                                fc7_units=8).output.shape) == (None, 8)


@pytest.mark.parametrize("fc7_units", [4096, 512])
@pytest.mark.parametrize("how", ["imagenet", "local path"])
def test_include_top_file_maps_by_layer_name(include_top, fc7_units, how,
                                             monkeypatch):
    path, source = include_top
    requested = []

    def cached(fname, origin=None, **kwargs):
        requested.append((fname, kwargs.get("cache_subdir")))
        return path

    monkeypatch.setattr(file_utils, "get_file", cached)
    weights = "imagenet" if how == "imagenet" else path
    model = build_backbone("vgg16_fc", SHAPE, weights=weights, fc7_units=fc7_units)
    assert requested == ([(INCLUDE_TOP, "models")] if how == "imagenet" else [])
    for name in CONVS + ["fc1"]:
        for got, want in zip(model.get_layer(name).get_weights(),
                             source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    fc2_kernel, fc2_bias = model.get_layer("fc2").get_weights()
    x = random_inputs(SHAPE)[0]
    if fc7_units == 4096:
        np.testing.assert_array_equal(fc2_bias, source.get_layer("fc2").bias.numpy())
        reference = features(fc7_of(source), x)  # dropout inactive in inference
        np.testing.assert_allclose(features(model, x), reference, rtol=1e-4,
                                   atol=1e-4 * np.abs(reference).max())
    else:  # a new fc7: its initial (zero) bias, not the file's
        assert fc2_kernel.shape == (4096, 512)
        np.testing.assert_array_equal(fc2_bias, np.zeros(512))


def test_imagenet_fc6_needs_224_input(include_top, tmp_path, monkeypatch):
    """A file whose fc6 was trained at another size (here 64 px: 2x2x512 rows)."""
    other = str(tmp_path / INCLUDE_TOP)
    shutil.copy(include_top[0], other)
    with h5py.File(other, "r+") as f:
        kernel = load_attributes_from_hdf5_group(f["fc1"], "weight_names")[0]
        del f["fc1"][kernel]
        f["fc1"].create_dataset(kernel, data=np.zeros((2048, 4096), "float32"))
    monkeypatch.setattr(file_utils, "get_file", lambda fname, *a, **k: other)
    for weights in ("imagenet", other):
        with pytest.raises(ValueError, match=r"\(2048, 4096\).*\(512, 4096\).*"
                                             r"need 224x224 input"):
            build_backbone("vgg16_fc", SHAPE, weights=weights, fc7_units=8)


def test_saved_weights_round_trip(tmp_path):
    original = build_backbone("vgg16_fc", SHAPE, fc7_units=512)
    path = str(tmp_path / "phi.weights.h5")
    original.save_weights(path)
    loaded = build_backbone("vgg16_fc", SHAPE, weights=path, fc7_units=512)
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    fresh = build_backbone("vgg16_fc", SHAPE, fc7_units=512)
    assert not np.array_equal(fresh.get_weights()[0], original.get_weights()[0])


def test_save_and_load_model(tmp_path):
    backbone = build_backbone("vgg16_fc", SHAPE, fc7_units=16)
    backbone.save(tmp_path / "vgg16_fc.keras")
    loaded = keras.models.load_model(tmp_path / "vgg16_fc.keras")
    x = random_inputs(SHAPE)[0]
    assert loaded.name == "vgg16_fc"
    np.testing.assert_allclose(features(loaded, x), features(backbone, x),
                               rtol=1e-5, atol=1e-6)


VGG16_CONFIGS = sorted(os.path.basename(p) for p in
                       glob.glob(os.path.join(ROOT, "configs", "*vgg16*.gin")))


@pytest.mark.parametrize("config", VGG16_CONFIGS)
def test_vgg16_paper_configs_use_the_full_vgg16(config):
    """Every *vgg16* config (with its _wgangp/_retdm siblings) reads VGG-16 as
    the papers do; RETDM's Phi_cnn resizes fc7 to 512 instead of adding a layer."""
    assert bound_parameters(config, "mltf.build_backbone.name") == ("vgg16_fc",)
    if "retdm" in config:
        assert bound_parameters(config, "mltf.build_backbone.fc7_units") == (512,)
        with pytest.raises(ValueError, match="embedding_dim"):
            bound_parameters(config, "mltf.build_backbone.embedding_dim")
    else:
        with pytest.raises(ValueError, match="fc7_units"):
            bound_parameters(config, "mltf.build_backbone.fc7_units")
