"""Seed 000 sec. 4.1 read literally (issue 13 item 4): fext, the critic's
frozen feature extractor, is the ImageNet backbone ("the pretrained generator"
without its output layer) or a copy of the BCE-trained generator's."""

import os
import types

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.utils import file_utils  # what keras.applications calls

from backbones.test_backbones import NOTOP_FILES, write_legacy_h5
from conftest import bound_parameters, tiny_bindings, tiny_classifier, train_in_process
from mltf import backbones, methods, models
from mltf.methods.wgan_gp import METHOD

C = 3
VGG_SHAPE = (32, 32, 3)


@pytest.fixture(autouse=True)
def no_gin_bindings():
    gin.clear_config()
    yield
    gin.clear_config()


def method_run(input_shape, **options):
    """The ``Run`` that ``WGANGP.build`` reads, outside the trainer."""
    return methods.Run(model_dir="", chief=True, strategy=tf.distribute.get_strategy(),
                       info=types.SimpleNamespace(num_labels=C), train_config=None,
                       input_shape=input_shape, optimizer=None, xla=False,
                       options=METHOD.check(options), in_scope=lambda optimizer: optimizer)


def classifier_on(backbone_name, input_shape):
    """A ``MultiLabelClassifier`` on a random-init registered backbone."""
    model = models.MultiLabelClassifier(backbones.build_backbone(backbone_name, input_shape), C)
    model.build((None,) + tuple(input_shape))
    return model


@pytest.fixture
def imagenet_vgg16(tmp_path, monkeypatch):
    """keras' download stubbed: a random no-top VGG-16 as the ImageNet file."""
    keras.utils.set_random_seed(1)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=VGG_SHAPE,
                                      pooling="avg")
    path = write_legacy_h5(source, tmp_path / NOTOP_FILES["vgg16"])
    monkeypatch.setattr(file_utils, "get_file", lambda fname, *a, **k: path)
    return source.get_weights()


def test_imagenet_fext_is_the_imagenet_file_and_stays_fixed(imagenet_vgg16):
    # Bound build_backbone options reach fext too, its embedding layer does not.
    gin.parse_config(["mltf.build_backbone.pooling = 'max'",
                      "mltf.build_backbone.embedding_dim = 4"])
    keras.utils.set_random_seed(0)
    generator = classifier_on("vgg16", VGG_SHAPE)
    run = method_run(VGG_SHAPE, fext="imagenet")
    gin.parse_config(["mltf.build_critic.depth = 1", "mltf.build_critic.hidden_dim = 8",
                      "mltf.build_wgan.n_critic = 1", "mltf.build_wgan.negative_sampling = False"])
    model = METHOD.build(run, generator)
    fext = model.feature_extractor
    assert generator.backbone.output_shape == (None, 4)
    assert fext.name == "vgg16" and fext.output_shape == (None, 512)
    assert any(isinstance(layer, keras.layers.GlobalMaxPooling2D) for layer in fext.layers)
    assert fext.trainable_weights == []
    assert len(fext.get_weights()) == len(imagenet_vgg16)
    for a, b in zip(imagenet_vgg16, fext.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(generator.backbone.get_weights()[0], imagenet_vgg16[0])
    generator_before = generator.backbone.get_weights()[0].copy()
    x = np.random.default_rng(0).uniform(-100, 100, (3,) + VGG_SHAPE).astype("float32")
    y = np.eye(C, dtype="float32")
    model.train_on_batch({"images": x}, y)  # 3 chunks of 1: matched, generated, G's
    assert int(model.generator_optimizer.iterations) == 1
    assert not np.array_equal(generator_before, generator.backbone.get_weights()[0])
    for a, b in zip(imagenet_vgg16, fext.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert METHOD.report(run, model)["wgan_gp"]["fext"] == "imagenet"


def test_generator_fext_is_a_frozen_copy_of_the_bce_backbone():
    generator = tiny_classifier(C)
    run = method_run((6,))
    assert run.options["fext"] == "generator"  # the default: mltf before issue 13
    model = METHOD.build(run, generator)
    fext = model.feature_extractor
    assert fext is not generator.backbone and fext.trainable_weights == []
    for a, b in zip(generator.backbone.get_weights(), fext.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert METHOD.report(run, model)["wgan_gp"]["fext"] == "generator"


def test_an_unknown_fext_is_refused():
    with pytest.raises(methods.SettingsError,
                       match="mltf.train.fext must be one of 'generator', 'imagenet', "
                             "got 'random'"):
        METHOD.check({"fext": "random"})


@pytest.mark.parametrize("name, shape", [("small_cnn", VGG_SHAPE), ("mlp", (6,))])
def test_imagenet_fext_needs_imagenet_weights_of_the_generator(name, shape):
    with pytest.raises(methods.SettingsError,
                       match=f"{name!r} has none .* bind mltf.train.fext = 'generator'"):
        METHOD.build(method_run(shape, fext="imagenet"), classifier_on(name, shape))


def test_imagenet_fext_is_checked_before_the_bce_phase(demo_dir, tmp_path):
    with pytest.raises(methods.SettingsError, match="'small_cnn' has none"):
        train_in_process("demo_wgangp.gin", tmp_path, tiny_bindings(demo_dir, **{
            "mltf.train.initial_model": None, "mltf.train.pretrain_epochs": 1,
            "mltf.train.fext": "'imagenet'"}))
    assert not os.path.exists(tmp_path / "pretrain_log.csv")


def test_offline_imagenet_fext_names_the_file(monkeypatch):
    def offline(fname, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service "
                        "not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(backbones.WeightsUnavailableError, match=NOTOP_FILES["vgg16"]):
        METHOD.build(method_run(VGG_SHAPE, fext="imagenet"), classifier_on("vgg16", VGG_SHAPE))


def test_paper_configs_take_the_imagenet_fext():
    for config in ("coco_vgg16_wgangp.gin", "nuswide_resnet101_wgangp.gin"):
        assert bound_parameters(config, "mltf.train.fext") == ("imagenet",)
    # No ImageNet weights of their generator, or measured offline on CPU.
    for config in ("demo_wgangp.gin", "miml_scene_small_cnn_wgangp.gin",
                   "miml_scene_lite0_wgangp.gin", "miml_scene_lite0_features_wgangp.gin"):
        assert bound_parameters(config, "mltf.train.fext") == ("generator",)
