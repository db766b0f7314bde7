"""WGAN-gp under mixed_float16 (issue 13 item 5): both optimizers scale
their losses (LossScaleOptimizer), a step compiles on CPU and keeps finite
weights, and a float32 classifier file is rebuilt in the policy."""

import keras
import numpy as np
import pytest

from conftest import tiny_classifier, tiny_features, tiny_wgan
from mltf import models

C = 3


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_wgan_gp_step_under_mixed_float16_scales_both_losses(mixed_float16):
    generator = tiny_classifier(C, activation="tanh")
    model = tiny_wgan(generator, 1, lambda: keras.optimizers.Adam(1e-3))
    critic = model.critic
    for opt in (model.critic_optimizer, model.generator_optimizer):
        assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert generator.backbone.get_layer("d").compute_dtype == "float16"
    # The score's bias gets no gradient: the critic loss weighs D's terms
    # -1 + 1/2 + 1/2 and the penalty does not depend on it.
    trained = [w for w in generator.trainable_weights + critic.trainable_weights
               if w is not critic.score.bias]
    before = [w.numpy().copy() for w in trained]
    x, y = tiny_features(8, C)  # 4 chunks of 2
    # Dynamic loss scaling starts at 2^15 and skips (and halves) a step whose
    # fp16 gradients overflow, so a few steps may be skipped at first.
    for _ in range(20):
        logs = model.train_on_batch({"images": x, "mismatched_labels": y[::-1]}, y,
                                    return_dict=True)
    after = [w.numpy() for w in trained]
    assert all(np.isfinite(a).all() for a in after)
    assert np.isfinite(logs["critic_loss"]) and np.isfinite(logs["generator_loss"])
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    # Overflowing steps were skipped, not applied: fewer updates, a lower scale.
    assert int(model.critic_optimizer.iterations) < 20
    assert float(model.critic_optimizer.dynamic_scale) < 2.0 ** 15


def test_a_float32_classifier_file_is_rebuilt_in_the_policy(tmp_path, mixed_float16):
    keras.mixed_precision.set_global_policy("float32")
    model = tiny_classifier(C, activation="tanh")
    model.set_thresholds([0.2, 0.5, 0.7])
    x, _ = tiny_features(4, C)
    expected = np.asarray(model(x))
    model.save(tmp_path / "m.keras")
    keras.mixed_precision.set_global_policy("mixed_float16")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert loaded.backbone.get_layer("d").compute_dtype == "float32"  # what the file says
    mixed = models.in_global_policy(loaded)
    assert mixed.backbone.get_layer("d").compute_dtype == "float16"
    assert mixed.head.compute_dtype == "float32"
    np.testing.assert_allclose(np.asarray(mixed(x), np.float32), expected, atol=5e-3)
    np.testing.assert_allclose(mixed.thresholds.numpy(), [0.2, 0.5, 0.7], rtol=1e-6)
    assert models.in_global_policy(mixed) is mixed
