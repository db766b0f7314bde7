"""ASL and focal loss against numpy transcriptions of their references (the
ASL authors' ``AsymmetricLoss``, torchvision's ``sigmoid_focal_loss``) and
hand-computed values; their gradients, saving, gin and MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import (mirrored_strategy, tiny_bindings, tiny_classifier, tiny_features,
                      train_in_process)
from mltf.losses.asymmetric import AsymmetricLoss
from mltf.losses.focal import FocalLoss
from roundtrip import assert_round_trip

Z = np.array([[2.0, -0.5, 1.0, -4.0], [-1.0, 0.3, 3.0, -2.0], [0.0, 0.0, -3.0, 5.0]])
Y = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1]], np.float64)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def official_asl(y, z, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8, weights=None):
    """Alibaba-MIIL/ASL ``AsymmetricLoss.forward`` in numpy, before its
    ``-loss.sum()``: the [B, C] terms (``weights``: use these focusing
    weights instead, as constants). Returns (terms, focusing weights)."""
    xs_pos = sigmoid(z)
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = np.minimum(xs_neg + clip, 1)
    loss = y * np.log(np.maximum(xs_pos, eps)) + (1 - y) * np.log(np.maximum(xs_neg, eps))
    w = np.ones_like(loss)
    if gamma_neg > 0 or gamma_pos > 0:
        pt = xs_pos * y + xs_neg * (1 - y)
        w = np.power(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    return -loss * (w if weights is None else weights), w


def numpy_focal(y, z, gamma=2.0, alpha=0.25):
    """torchvision.ops.sigmoid_focal_loss (reduction "none") in numpy."""
    p = sigmoid(z)
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def keras_value(loss, y=Y, z=Z):
    return float(loss(y.astype("float32"), z.astype("float32")))


def numpy_bce(y, z):
    return np.logaddexp(0, z) - y * z


@pytest.mark.parametrize("kwargs", [{}, {"gamma_pos": 0.0}, {"clip": 0.0},
                                    {"gamma_neg": 2.0, "clip": 0.2, "eps": 1e-3}])
def test_asl_is_the_official_sum_over_the_batch_size(kwargs):
    official = official_asl(Y, Z, **kwargs)[0].sum()  # what the authors' code returns
    b, c = Y.shape
    assert keras_value(AsymmetricLoss(**kwargs, label_reduction="sum")) == pytest.approx(
        official / b, rel=1e-5)
    assert keras_value(AsymmetricLoss(**kwargs)) == pytest.approx(official / (b * c), rel=1e-5)


def test_asl_hand_computed_and_the_clip_shift():
    y = np.array([[1.0, 0.0, 0.0]])
    z = np.array([[0.0, 0.0, -3.0]])  # p = 0.5, 0.5, 0.0474 (< clip 0.05)
    terms = [0.5 * np.log(2.0),                  # -(1 - 0.5)^1 log 0.5
             -(0.45 ** 4) * np.log(1 - 0.45),    # p_m = 0.5 - 0.05
             0.0]                                # p < clip: discarded
    loss = AsymmetricLoss(label_reduction="sum")
    assert keras_value(loss, y, z) == pytest.approx(sum(terms), rel=1e-5)
    # The discarded negative contributes neither loss nor gradient.
    z_tf = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z_tf)
        value = loss(y.astype("float32"), z_tf)
    grad = tape.gradient(value, z_tf).numpy()
    assert grad[0, 2] == 0.0 and grad[0, 1] > 0 and grad[0, 0] < 0
    no_clip = AsymmetricLoss(clip=0.0, label_reduction="sum")
    assert keras_value(no_clip, y[:, 2:], z[:, 2:]) == pytest.approx(
        -(sigmoid(-3.0) ** 4) * np.log(1 - sigmoid(-3.0)), rel=1e-5)


def test_asl_and_focal_reduce_to_bce():
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    expected = float(np.mean(numpy_bce(Y, Z)))
    assert keras_value(bce) == pytest.approx(expected, rel=1e-5)
    asl = AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    assert keras_value(asl) == pytest.approx(expected, rel=1e-5)
    assert keras_value(FocalLoss(gamma=0.0, alpha=None)) == pytest.approx(expected, rel=1e-5)
    assert keras_value(FocalLoss(gamma=0.0, alpha=None, label_reduction="sum")) == \
        pytest.approx(expected * Y.shape[1], rel=1e-5)


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (1.0, None), (0.5, 0.75)])
def test_focal_matches_torchvision_and_keras(gamma, alpha):
    expected = numpy_focal(Y, Z, gamma, alpha)
    assert keras_value(FocalLoss(gamma, alpha)) == pytest.approx(expected.mean(), rel=1e-5)
    assert keras_value(FocalLoss(gamma, alpha, label_reduction="sum")) == pytest.approx(
        expected.sum(axis=1).mean(), rel=1e-5)
    reference = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=alpha is not None, alpha=alpha or 0.0, gamma=gamma,
        from_logits=True)
    assert keras_value(FocalLoss(gamma, alpha)) == pytest.approx(keras_value(reference),
                                                                 rel=1e-4)


def finite_difference(f, z, h=1e-6):
    grad = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[idx] = h
        grad[idx] = (f(z + step) - f(z - step)) / (2 * h)
    return grad


def tape_gradient(loss, y, z):
    z_tf = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z_tf)
        value = loss(y.astype("float32"), z_tf)
    return tape.gradient(value, z_tf).numpy()


def test_disable_focal_grad_drops_the_focusing_weights_gradient():
    b = Y.shape[0]
    _, w0 = official_asl(Y, Z)
    full = finite_difference(lambda z: official_asl(Y, z)[0].sum() / b, Z)
    frozen = finite_difference(lambda z: official_asl(Y, z, weights=w0)[0].sum() / b, Z)
    np.testing.assert_allclose(tape_gradient(AsymmetricLoss(label_reduction="sum"), Y, Z),
                               full, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(
        tape_gradient(AsymmetricLoss(label_reduction="sum", disable_focal_grad=True), Y, Z),
        frozen, rtol=2e-3, atol=1e-6)
    assert np.abs(full - frozen).max() > 0.05  # the two differ where the weights vary
    # Same value either way: only the gradient changes.
    assert keras_value(AsymmetricLoss(disable_focal_grad=True)) == pytest.approx(
        keras_value(AsymmetricLoss()), rel=1e-6)


def test_saved_with_the_classifier_and_reduction_checked(tmp_path):
    x, _ = tiny_features(4, 3)
    loss = AsymmetricLoss(gamma_neg=3.0, gamma_pos=0.0, clip=0.1, disable_focal_grad=True,
                          label_reduction="sum")
    model = tiny_classifier(3, loss=loss, label_reduction="sum")
    model.compile(optimizer="sgd", xla=False)
    loaded = assert_round_trip(model, tmp_path, x)
    assert isinstance(loaded.classification_loss, AsymmetricLoss)
    assert loaded.classification_loss.get_config() == loss.get_config()
    (tmp_path / "f").mkdir()
    focal = tiny_classifier(3, loss=FocalLoss(1.5, None))
    focal.compile(optimizer="sgd", xla=False)
    assert assert_round_trip(focal, tmp_path / "f", x).classification_loss.get_config() == \
        FocalLoss(1.5, None).get_config()
    with pytest.raises(ValueError, match="reduces over the labels by 'sum', the classifier "
                                         "by 'mean'"):
        tiny_classifier(3, loss=AsymmetricLoss(label_reduction="sum"))


@pytest.mark.parametrize("loss", [AsymmetricLoss(label_reduction="sum"),
                                  FocalLoss(label_reduction="sum")],
                         ids=["asl", "focal"])
def test_two_logical_devices_equal_one(loss):
    x, y = tiny_features(8, 3)
    results = []
    for n in (1, 2):
        with mirrored_strategy(n).scope():
            model = tiny_classifier(3, loss=loss.from_config(loss.get_config()),
                                    label_reduction="sum")
            model.compile(optimizer=keras.optimizers.SGD(0.5), xla=False)
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=3, verbose=0)
        results.append(model.get_weights())
    moved = [not np.allclose(a, b) for a, b in zip(results[0], tiny_classifier(3).get_weights())]
    assert any(moved)
    for w1, w2 in zip(*results):
        np.testing.assert_allclose(w1, w2, rtol=1e-4, atol=1e-6)


def test_train_with_asl_from_gin(demo_dir, tmp_path):
    bindings = {"mltf.train.epochs": 1, "mltf.train.steps_per_epoch": 2, "mltf.train.xla": False,
                "mltf.train.loss": "@mltf.losses.AsymmetricLoss()",
                "mltf.losses.AsymmetricLoss.gamma_pos": 0.0,
                "mltf.losses.AsymmetricLoss.label_reduction": "'sum'"}
    train_in_process("demo.gin", tmp_path, tiny_bindings(demo_dir, **bindings))
    model = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(model.classification_loss, AsymmetricLoss)
    assert model.classification_loss.gamma_pos == 0.0
    assert model.label_reduction == "sum"  # the loss's own, mltf.train.label_reduction unbound
    with pytest.raises(ValueError, match="set both alike"):
        train_in_process("demo.gin", tmp_path / "b", tiny_bindings(demo_dir, **bindings, **{
            "mltf.train.label_reduction": "'mean'"}))
