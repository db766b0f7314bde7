"""A classification loss is a plug-in: a Keras ``Loss`` on (labels, logits)
given to the classifier is what BCE training, the WGAN-gp generator and the
trainer use, and it is saved with the model."""

import gin
import keras
import numpy as np
import pytest

from conftest import tiny_bindings, tiny_classifier, tiny_features, tiny_wgan, train_in_process
from mltf import models
from roundtrip import assert_round_trip

C = 3


@keras.saving.register_keras_serializable(package="mltf_tests")
class PositiveWeightedBCE(keras.losses.Loss):
    """BCE from logits with positives weighted ``weight`` (a toy plug-in).

    Args:
      weight: the weight of the positive term.
      **kwargs: ``keras.losses.Loss`` arguments.
    """

    def __init__(self, weight=3.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, y_true, logits):
        y = keras.ops.cast(y_true, logits.dtype)
        log_p = -keras.ops.softplus(-logits)       # log sigmoid(z)
        log_not_p = -keras.ops.softplus(logits)    # log (1 - sigmoid(z))
        return -keras.ops.mean(self.weight * y * log_p + (1 - y) * log_not_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def numpy_weighted_bce(y, z, w):
    log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    return float(np.mean(-(w * y * log_p + (1 - y) * log_q)))


def test_bce_training_uses_the_loss_and_it_is_saved(tmp_path):
    x, y = tiny_features(8, C)
    model = tiny_classifier(C, loss=PositiveWeightedBCE(2.5))
    model.compile(optimizer=keras.optimizers.SGD(0.0), xla=False)
    logits = np.asarray(model(x, return_logits=True))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(numpy_weighted_bce(y, logits, 2.5), rel=1e-5)
    loaded = assert_round_trip(model, tmp_path, x)
    assert isinstance(loaded.classification_loss, PositiveWeightedBCE)
    assert loaded.classification_loss.weight == 2.5
    assert loaded.get_config()["loss"]["config"]["weight"] == 2.5
    with pytest.raises(ValueError, match="label_smoothing applies to the default BCE"):
        models.MultiLabelClassifier(model.backbone, C, label_smoothing=0.1,
                                    loss=PositiveWeightedBCE())


def test_the_wgan_generator_update_uses_the_classifiers_loss():
    x, y = tiny_features(14, C)  # 7 chunks of 2 (n_critic = 2)
    generator = tiny_classifier(C, loss=PositiveWeightedBCE(4.0))
    model = tiny_wgan(generator, 2, lambda: keras.optimizers.SGD(0.0))
    last = slice(12, 14)  # the generator's chunk
    logits = np.asarray(generator(x[last], training=True, return_logits=True))
    logs = model.train_on_batch({"images": x, "mismatched_labels": y[::-1]}, y,
                                return_dict=True)
    assert logs["bce"] == pytest.approx(numpy_weighted_bce(y[last], logits, 4.0), rel=1e-5)


def test_the_trainer_takes_the_loss_from_gin(demo_dir, tmp_path):
    gin.external_configurable(PositiveWeightedBCE, module="mltf_tests")
    train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **{
        "mltf.train.epochs": 1, "mltf.train.steps_per_epoch": 2, "mltf.train.xla": False,
        "mltf.train.loss": "@mltf_tests.PositiveWeightedBCE()",
        "mltf_tests.PositiveWeightedBCE.weight": 1.5}))
    model = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(model.classification_loss, PositiveWeightedBCE)
    assert model.classification_loss.weight == 1.5
