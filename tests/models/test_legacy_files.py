"""``.keras`` files written by mltf before its package layout (commit
79b6fb2: ``mltf.models``, ``mltf.wgan``, ``mltf.retdm`` as flat modules;
tests/fixtures/legacy/make_legacy.py) load with today's code and give the
outputs they gave then."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from mltf import methods, models
from mltf.methods.retdm import RETDMClassifier
from mltf.methods.wgan_gp import WGANGPClassifier

LEGACY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "fixtures", "legacy")


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(LEGACY, "expected.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def inputs():
    spec = importlib.util.spec_from_file_location(
        "legacy_inputs", os.path.join(LEGACY, "legacy_inputs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"images": module.images(), "features": module.features()}


def _load(name):
    methods.load_all()  # what mltf.inference and the trainer import
    return keras.saving.load_model(os.path.join(LEGACY, f"{name}.keras"))


def test_classifier_file_loads_with_its_thresholds_and_optimizer(expected, inputs):
    model = _load("classifier_small_cnn")
    assert isinstance(model, models.MultiLabelClassifier)
    assert model.preprocessing is None  # not saved then: inference falls back to the name
    assert model.label_names == list("abcde")
    np.testing.assert_allclose(model.thresholds.numpy(), np.linspace(0.3, 0.7, 5), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model(inputs["images"])),
                               expected["classifier_small_cnn"], atol=1e-6)
    assert model.optimizer is not None and model.optimizer.learning_rate.numpy() == \
        pytest.approx(1e-3)


def test_wgan_gp_file_loads_with_both_optimizers(expected, inputs):
    model = _load("wgan_gp_mlp")
    assert isinstance(model, WGANGPClassifier)
    np.testing.assert_allclose(np.asarray(model(inputs["features"])),
                               expected["wgan_gp_mlp"], atol=1e-6)
    assert float(model.generator_optimizer.learning_rate.numpy()) == pytest.approx(2e-4)
    assert float(model.critic_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert model.critic.depth == 2 and model.feature_extractor is not None


def test_retdm_file_loads_with_its_tables(expected, inputs):
    model = _load("retdm_mlp")
    assert isinstance(model, RETDMClassifier)
    np.testing.assert_allclose(np.asarray(model(inputs["features"])),
                               expected["retdm_mlp"], atol=1e-6)
    np.testing.assert_array_equal(model.label_sets.numpy(), expected["retdm_mlp_label_sets"])
    np.testing.assert_array_equal(model.neighbours.numpy(), expected["retdm_mlp_neighbours"])
    assert model.classification_epochs == 1 and model.k == 3
