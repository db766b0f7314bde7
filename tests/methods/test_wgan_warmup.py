"""The WGAN-gp critic warm-up (``critic_warmup``): critic updates with the
generator fixed, then the alternating updates; under both batch layouts,
two logical devices, XLA and a resume through the run state."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored_strategy, tiny_classifier
from roundtrip import assert_round_trip
from test_wgan import make_wgan, toy_batch
from mltf import wgan
from mltf.methods.wgan_gp import METHOD, warmup
from mltf.training import run_state


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def _generator_state(model):
    """G's weights and the generator optimizer's variables (its count too)."""
    return _values(model.generator.weights) + _values(model.generator_optimizer.variables)


def _step(model, seed):
    x, y, m = toy_batch(model.slots * 4, seed=seed)
    model.train_on_batch({"images": x, "mismatched_labels": m}, y)


@pytest.mark.parametrize("batches", ["fresh", "shared"])
def test_generator_is_bit_identical_during_the_warm_up_and_moves_after(batches):
    model = make_wgan(critic_warmup=6, batches=batches)
    generator, critic = _generator_state(model), _values(model.critic.weights)
    for seed in range(2):  # 2 steps x 3 critic updates = the warm-up
        _step(model, seed)
        for a, b in zip(generator, _generator_state(model)):
            np.testing.assert_array_equal(a, b)
        moved = _values(model.critic.weights)
        assert any(not np.array_equal(a, b) for a, b in zip(critic, moved))
        critic = moved
    assert int(model.generator_optimizer.iterations) == 0
    for seed in range(2, 4):
        _step(model, seed)
        assert any(not np.array_equal(a, b)
                   for a, b in zip(generator, _values(model.generator.weights)))
        moved = _values(model.critic.weights)
        assert any(not np.array_equal(a, b) for a, b in zip(critic, moved))
        generator, critic = _values(model.generator.weights), moved
    assert int(model.generator_optimizer.iterations) == 2
    assert int(model.critic_optimizer.iterations) == 6 + 3 * 2


def test_step_index_counts_warm_up_steps_below_zero():
    model = make_wgan(critic_warmup=6)
    indices = []
    for critic, generator in [(0, 0), (3, 0), (6, 0), (9, 1), (12, 2)]:
        model.critic_optimizer.iterations.assign(critic)
        model.generator_optimizer.iterations.assign(generator)
        indices.append(int(warmup.step_index(model, warmup.warming_up(model))))
    assert indices == [-2, -1, 0, 1, 2]  # one noise key per step, none shared
    plain = make_wgan()
    plain.generator_optimizer.iterations.assign(5)
    assert int(warmup.step_index(plain, warmup.warming_up(plain))) == 5


def test_warm_up_must_be_whole_steps_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="multiple of n_critic"):
        make_wgan(critic_warmup=4)
    with pytest.raises(ValueError, match="multiple of n_critic"):
        make_wgan(critic_warmup=-3)
    model = make_wgan(critic_warmup=3)
    assert model.get_config()["critic_warmup"] == 3
    assert make_wgan().get_config()["critic_warmup"] == 0
    x, y, m = toy_batch(model.slots * 2)
    model.train_on_batch({"images": x, "mismatched_labels": m}, y)
    loaded = assert_round_trip(model, tmp_path, x, atol=1e-6)
    assert isinstance(loaded, wgan.WGANGPClassifier) and loaded.critic_warmup == 3
    assert int(loaded.critic_optimizer.iterations) == 3
    assert int(loaded.generator_optimizer.iterations) == 0


def test_the_gin_binding_reaches_the_model_and_the_report():
    from test_wgan_fext import method_run
    gin.clear_config()
    try:
        gin.parse_config(["mltf.build_critic.depth = 1", "mltf.build_critic.hidden_dim = 8",
                          "mltf.build_wgan.critic_warmup = 6"])
        model = METHOD.build(method_run((6,)), tiny_classifier(3))
    finally:
        gin.clear_config()
    assert model.critic_warmup == 6
    report = METHOD.report(method_run((6,)), model)["wgan_gp"]
    assert report["critic_warmup"] == 6 and report["n_critic"] == 3


# XLA is the GPU path; without it the same hold is kept for -m slow (time).
@pytest.mark.parametrize("xla", [pytest.param(False, marks=pytest.mark.slow), True])
def test_two_logical_devices_hold_the_generator_during_the_warm_up(xla):
    with mirrored_strategy(2).scope():
        model = make_wgan(seed=1, xla=xla, critic_warmup=3)
    x, y, m = toy_batch(model.slots * 4, seed=3)
    ds = tf.data.Dataset.from_tensors(({"images": x, "mismatched_labels": m}, y))
    generator = _generator_state(model)
    model.fit(ds, epochs=1, verbose=0)
    for a, b in zip(generator, _generator_state(model)):
        np.testing.assert_array_equal(a, b)
    model.fit(ds, epochs=1, verbose=0)
    assert int(model.critic_optimizer.iterations.numpy()) == 3 + 3 * 1
    assert int(model.generator_optimizer.iterations.numpy()) == 1


# During the warm-up; at its end (kept for -m slow: time).
@pytest.mark.parametrize("killed_after", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_run_killed_during_or_after_the_warm_up_resumes_the_same(tmp_path, killed_after):
    reference = make_wgan(critic_warmup=6)
    for seed in range(4):
        _step(reference, seed)
    model = make_wgan(critic_warmup=6)
    for seed in range(killed_after):
        _step(model, seed)
    state = run_state.RunState(str(tmp_path / "backup"), str(tmp_path / "log.csv"))
    state.restore(model)
    state.set_model(model)
    state.on_epoch_end(0, {"val_mAP": 0.5})
    resumed = make_wgan(seed=9, critic_warmup=6)
    assert run_state.RunState(str(tmp_path / "backup"),
                              str(tmp_path / "log.csv")).restore(resumed) == 1
    for seed in range(killed_after, 4):
        _step(resumed, seed)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.critic_optimizer.iterations) == 6 + 3 * 2
