"""CoupledDecaySGD takes PyTorch SGD's steps (weight decay added to the
gradient before momentum), saves and loads with a model, and is what the
papers' SGD configs use."""


import keras
import numpy as np
import pytest

from conftest import bound_parameters
from mltf.core.optimizers import CoupledDecaySGD


def torch_sgd_steps(w, grads, lr, momentum, decay):
    """torch.optim.SGD (dampening 0, no Nesterov), written out."""
    w, buf = np.array(w, np.float64), None
    for g in grads:
        d = g + decay * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def test_steps_equal_pytorch_sgd_with_coupled_weight_decay():
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    grads = [np.array([0.1, 0.2, -0.3], np.float32), np.array([-0.4, 0.0, 0.25], np.float32),
             np.array([0.05, -0.1, 0.0], np.float32)]
    var = keras.Variable(w0)
    opt = CoupledDecaySGD(learning_rate=0.1, momentum=0.9, coupled_decay=0.01)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [var])
    expected = torch_sgd_steps(w0, grads, 0.1, 0.9, 0.01)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6, atol=1e-7)
    # Keras's decoupled weight_decay takes other steps (why this class exists).
    other = keras.Variable(w0)
    decoupled = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.01)
    for g in grads:
        decoupled.apply([keras.ops.convert_to_tensor(g)], [other])
    assert np.abs(other.numpy() - expected).max() > 1e-4


def test_refuses_both_decays_and_round_trips_in_a_model(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        CoupledDecaySGD(coupled_decay=1e-4, weight_decay=1e-4)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=CoupledDecaySGD(0.1, momentum=0.9, coupled_decay=1e-4), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, CoupledDecaySGD)
    assert loaded.optimizer.coupled_decay == pytest.approx(1e-4)
    assert int(loaded.optimizer.iterations) == 1


@pytest.mark.parametrize("config", ["coco_vgg16.gin", "scene_vgg16_retdm.gin"])
def test_paper_sgd_configs_use_the_coupled_decay(config):
    optimizer, decay = bound_parameters(config, "mltf.train.optimizer",
                                        "mltf.optimizers.CoupledDecaySGD.coupled_decay")
    assert optimizer.selector == "mltf.optimizers.CoupledDecaySGD" and decay == 1e-4


@pytest.mark.parametrize("config", ["scene_vgg16.gin", "scene_vgg16_retdm.gin",
                                    "coco_vgg16.gin", "coco_vgg16_retdm.gin"])
def test_paper_sgd_configs_keep_the_papers_batch_and_rate(config):
    """Seed 001: batch 256 at lr 0.1."""
    assert bound_parameters(config, "pipelines.InputConfig.batch_size",
                            "mltf.optimizers.CoupledDecaySGD.learning_rate") == (256, 0.1)
