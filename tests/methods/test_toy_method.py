"""A new method is one class plus one registry line: a linear probe (the
backbone frozen, only the head trained) added here in 30 lines runs through
the unchanged trainer, with its own option and its own report."""

import json

import keras
import numpy as np
import pytest

from conftest import train_in_process, tiny_bindings
from mltf import methods


class LinearProbe(methods.Method):
    """Trains the head alone on a frozen backbone.

    Args:
      probe_learning_rate: the head's Adam learning rate.
    """

    name = "probe"
    options = {"probe_learning_rate": 1e-2}

    def check(self, options, foreign=()):
        options = super().check(options, foreign)
        if options["probe_learning_rate"] <= 0:
            raise methods.SettingsError("probe_learning_rate must be > 0")
        return options

    def prepare(self, run, classifier):
        classifier.backbone.trainable = False
        with run.strategy.scope():
            classifier.compile(
                optimizer=keras.optimizers.Adam(run.options["probe_learning_rate"]),
                xla=run.xla)

    def report(self, run, fit_model):
        return {"probe": {"frozen": len(fit_model.backbone.weights),
                          "trained": len(fit_model.trainable_weights)}}


METHOD = LinearProbe()



@pytest.fixture
def probe_registered():
    methods.register("probe", METHOD)  # the one registry line
    yield
    del methods.REGISTRY["probe"]


def test_a_toy_method_runs_through_the_trainer(probe_registered, demo_dir, tmp_path):
    small = tiny_bindings(demo_dir, **{"mltf.train.epochs": 1, "mltf.train.xla": False})
    train_in_process("demo.gin", tmp_path / "bce", small)
    start = keras.models.load_model(tmp_path / "bce" / "model.keras")
    train_in_process("demo.gin", tmp_path / "probe", small + [
        "mltf.train.method = 'probe'", "mltf.train.probe_learning_rate = 0.05",
        f"mltf.train.initial_model = '{tmp_path / 'bce' / 'model.keras'}'"])
    report = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert report["method"] == "probe"
    assert report["probe"] == {"frozen": len(start.backbone.weights), "trained": 2}
    after = keras.models.load_model(tmp_path / "probe" / "model.keras")
    for a, b in zip(start.backbone.weights, after.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # frozen
    assert not np.array_equal(start.head.kernel.numpy(), after.head.kernel.numpy())
    assert after.optimizer.learning_rate.numpy() == pytest.approx(0.05)


def test_a_toy_methods_options_are_checked(probe_registered):
    with pytest.raises(methods.SettingsError, match="probe_learning_rate must be > 0"):
        METHOD.check({"probe_learning_rate": 0.0})
    with pytest.raises(methods.SettingsError,
                       match=r"mltf.train.pretrain_epochs: not a parameter of mltf.train "
                             r"nor an option of method 'probe' \(its options: "
                             r"probe_learning_rate\)"):
        METHOD.check({"pretrain_epochs": 1})
    with pytest.raises(methods.SettingsError, match="'bce', 'wgan_gp', 'retdm', 'probe'"):
        methods.get("nope")
