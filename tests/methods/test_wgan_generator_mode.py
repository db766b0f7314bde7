"""The generator's mode for the generated label sets the critic learns on
(issue 13 item 6): inference (dropout off, BatchNorm moving statistics) or
training mode, as in the generator update."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import bound_parameters, tiny_classifier, tiny_wgan
from mltf import models

C = 3


def bn_classifier():
    """Dense(5) -> BatchNormalization -> head over 6 features (seeded)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(5, name="d")(inputs))
    model = models.MultiLabelClassifier(keras.Model(inputs, h, name="bb"), C)
    model.build((None, 6))
    return model


def numpy_logits(weights, x, batch_statistics):
    """The BN classifier by hand: BN on the batch's statistics (training mode)
    or on its moving ones (inference mode, epsilon 1e-3)."""
    kernel, bias, gamma, beta, moving_mean, moving_var, head_kernel, head_bias = weights
    h = x @ kernel + bias
    mean, var = (h.mean(0), h.var(0)) if batch_statistics else (moving_mean, moving_var)
    return (gamma * (h - mean) / np.sqrt(var + 1e-3) + beta) @ head_kernel + head_bias


def bn_weights(generator):
    layers = (generator.backbone.get_layer("d"), generator.backbone.get_layer("bn"),
              generator.head)
    return [np.array(w) for layer in layers for w in layer.get_weights()]


def critic_step_logits(model, x, y):
    """One step run eagerly; G's logits on each critic update's generated
    chunk, as the critic step receives them."""
    model._step_functions()
    seen, critic_fn = [], model._critic_fn

    def spy(*args):
        seen.append(np.asarray(args[2]))
        return critic_fn(*args)

    model._critic_fn = spy
    model.train_step(({"images": tf.constant(x), "mismatched_labels": tf.constant(y[::-1])},
                      tf.constant(y)))
    return seen


def shifted_inputs(n, seed=0):
    """Features far from BN's initial moving statistics (mean 0, variance 1)."""
    rng = np.random.default_rng(seed)
    return (3 + 2 * rng.normal(size=(n, 6))).astype("float32"), \
        (rng.random((n, C)) < 0.4).astype("float32")


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_critic_samples_mode_and_batch_norm_statistics(mode):
    b = 4
    generator = bn_classifier()
    # gumbel=False: the critic's generated samples are sigmoid(these logits).
    model = tiny_wgan(generator, 2, lambda: keras.optimizers.SGD(0.1), gumbel=False,
                      critic_samples=mode)
    x, y = shifted_inputs(model.slots * b)  # chunks: (matched, generated, mismatched) x 2, G's
    before = bn_weights(generator)
    seen = critic_step_logits(model, x, y)
    assert len(seen) == 2
    for k, logits in enumerate(seen):
        chunk = x[(3 * k + 1) * b:(3 * k + 2) * b]
        expected = numpy_logits(before, chunk, batch_statistics=mode == "train")
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
        other = numpy_logits(before, chunk, batch_statistics=mode != "train")
        assert np.abs(expected - other).max() > 0.1  # the two modes differ here
    # The moving statistics moved once, by the generator update's chunk alone.
    h = x[6 * b:] @ before[0] + before[1]
    bn = generator.backbone.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.99 * before[4] + 0.01 * h.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.99 * before[5] + 0.01 * h.var(0),
                               rtol=1e-5, atol=1e-6)


def test_inference_is_the_default_and_round_trips():
    model = tiny_wgan(tiny_classifier(C), 1, lambda: keras.optimizers.SGD(0.0))
    assert model.critic_samples == "inference"
    config = tiny_wgan(tiny_classifier(C), 1, lambda: keras.optimizers.SGD(0.0),
                       critic_samples="train").get_config()
    assert type(model).from_config(config).critic_samples == "train"
    with pytest.raises(ValueError, match="'inference' or 'train'"):
        tiny_wgan(tiny_classifier(C), 1, keras.optimizers.SGD, critic_samples="eval")


def test_train_mode_samples_draw_fresh_dropout_masks_per_chunk():
    b, p = 4, 0.5
    generator = tiny_classifier(C, dropout=p)
    model = tiny_wgan(generator, 3, lambda: keras.optimizers.SGD(0.0), critic_samples="train")
    x, y = shifted_inputs(b)
    x, y = np.tile(x, (model.slots, 1)), np.tile(y, (model.slots, 1))  # every chunk alike
    features = np.asarray(generator.backbone(x[:b]))
    kernel, bias = (np.asarray(w) for w in generator.head.weights)
    # Each example's logits under each of the 2^5 dropout masks (kept / (1 - p)).
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=5)))
    candidates = (features[:, None, :] * masks[None] / (1 - p)) @ kernel + bias  # [b, 32, C]
    seed_state = generator.feature_dropout.seed_generator.state
    counter = int(seed_state.numpy()[1])
    seen = critic_step_logits(model, x, y)
    for logits in seen:
        gaps = np.abs(candidates - logits[:, None, :]).max(axis=-1)  # [b, 32]
        assert gaps.min(axis=1).max() < 1e-5  # every example: some dropout mask
    assert all(not np.allclose(seen[i], seen[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    # One draw per generated chunk and one for the generator update.
    assert int(seed_state.numpy()[1]) == counter + 4


def test_paper_configs_take_training_mode_samples():
    for config in ("coco_vgg16_wgangp.gin", "demo_wgangp.gin"):
        assert bound_parameters(config, "mltf.build_wgan.critic_samples") == ("train",)
