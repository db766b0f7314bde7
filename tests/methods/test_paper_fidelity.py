"""The seeds read literally (issue 13): the (d) ablation without negative
sampling, the BCE summed over the labels as seed 000's equation (1) and seed
001's equation (10) write it, and no WGAN-gp run from an untrained
generator."""

import os

import keras
import numpy as np
import pytest

from conftest import (bound_parameters, tiny_bindings, tiny_classifier, tiny_features,
                      tiny_wgan, train_in_process)
from mltf import losses, methods
from roundtrip import assert_round_trip

C = 4


def test_ablation_d_has_no_negative_sampling():
    config = "coco_vgg16_wgangp_unconditional.gin"
    assert bound_parameters(config, "mltf.build_critic.conditional")[0] is False
    assert bound_parameters(config, "mltf.build_wgan.negative_sampling")[0] is False
    assert bound_parameters("coco_vgg16_wgangp.gin", "mltf.build_wgan.negative_sampling")[0] is True


@pytest.mark.parametrize("config", ["coco_vgg16_wgangp.gin", "nuswide_resnet101_wgangp.gin",
                                    "coco_vgg16_wgangp_no_gumbel.gin"])
def test_paper_wgan_configs_sum_the_bce_over_labels(config):
    assert bound_parameters(config, "mltf.train.label_reduction")[0] == "sum"


@pytest.mark.parametrize("config", ["coco_vgg16_retdm.gin", "scene_vgg16_retdm.gin",
                                    "mirflickr_vgg16_retdm.gin"])
def test_paper_retdm_configs_sum_the_bce_with_the_alpha_chosen_for_it(config):
    # alpha 0.06: chosen for the summed BCE on a MULAN scene selection split
    # (benchmarks/select_retdm_alpha.py); 0.01 was chosen for the mean.
    assert bound_parameters(config, "mltf.train.label_reduction",
                            "mltf.build_retdm.alpha") == ("sum", 0.06)


def numpy_bce(y, z, smoothing=0.0):
    y = y * (1 - smoothing) + 0.5 * smoothing
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # elementwise


def test_label_summed_bce_is_the_sum_over_labels():
    y = np.array([[1, 0, 0, 1], [0, 0, 1, 0]], np.float32)
    z = np.array([[2.0, -1.0, 0.5, -0.3], [0.0, 1.5, -2.0, 0.7]], np.float32)
    for smoothing in (0.0, 0.2):
        summed = float(losses.bce.LabelSummedBCE(label_smoothing=smoothing)(y, z))
        mean = float(keras.losses.BinaryCrossentropy(from_logits=True,
                                                     label_smoothing=smoothing)(y, z))
        expected = numpy_bce(y, z, smoothing).sum(axis=1).mean()
        assert summed == pytest.approx(expected, rel=1e-6)
        assert summed == pytest.approx(C * mean, rel=1e-6)


def test_a_summing_classifier_trains_on_c_times_the_mean_and_saves_it(tmp_path):
    x, y = tiny_features(8, C)
    logs = {}
    for reduction in ("mean", "sum"):
        model = tiny_classifier(C, label_reduction=reduction)
        model.compile(optimizer=keras.optimizers.SGD(0.0), xla=False)
        logs[reduction] = model.train_on_batch(x, y, return_dict=True)["loss"]
    assert logs["sum"] == pytest.approx(C * logs["mean"], rel=1e-5)
    loaded = assert_round_trip(model, tmp_path, x)
    assert loaded.label_reduction == "sum"
    assert isinstance(loaded.classification_loss, losses.bce.LabelSummedBCE)
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        tiny_classifier(C, label_reduction="max")


def test_the_generator_term_is_alpha_times_the_summed_bce():
    x, y = tiny_features(14, C)  # 7 chunks of 2 with n_critic = 2
    generator = tiny_classifier(C, label_reduction="sum")
    model = tiny_wgan(generator, 2, lambda: keras.optimizers.SGD(0.0), alpha=10.0)
    logits = np.asarray(generator(x[12:], return_logits=True))
    logs = model.train_on_batch({"images": x, "mismatched_labels": y[::-1]}, y,
                                return_dict=True)
    summed = numpy_bce(y[12:], logits).sum(axis=1).mean()
    assert logs["bce"] == pytest.approx(summed, rel=1e-5)
    assert logs["generator_loss"] == pytest.approx(logs["adversarial_loss"] + 10 * summed,
                                                   rel=1e-5)


def test_wgan_gp_without_a_trained_generator_stops_with_the_fix(demo_dir, tmp_path):
    with pytest.raises(methods.SettingsError, match="mltf.train.initial_model .* or "
                                                    "mltf.train.pretrain_epochs"):
        train_in_process("demo_wgangp.gin", tmp_path, tiny_bindings(demo_dir, **{
            "mltf.train.initial_model": None, "mltf.train.xla": False}))
    assert not os.path.exists(tmp_path / "backup") and not os.listdir(tmp_path)


def test_a_wgan_config_runs_as_its_own_bce_control(demo_dir, tmp_path, capsys):
    """The equal-budget control of a WGAN-gp arm is the same config with
    method = "bce": the WGAN-gp options it binds are dropped with a note, a
    typo is still refused."""
    bindings = tiny_bindings(demo_dir, **{"mltf.train.method": "'bce'",
                                          "mltf.train.initial_model": None,
                                          "mltf.train.epochs": 1, "mltf.train.xla": False})
    train_in_process("demo_wgangp.gin", tmp_path / "run", bindings)
    out = capsys.readouterr().out
    assert ("method 'bce' ignores mltf.train.critic_optimizer, mltf.train.fext, "
            "mltf.train.generator_optimizer") in out
    with pytest.raises(methods.SettingsError, match="mltf.train.critic_optimiser"):
        methods.get("bce").check({"critic_optimiser": None},
                                 foreign=methods.option_names(exclude="bce"))
