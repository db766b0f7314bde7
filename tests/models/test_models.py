"""The BCE classifier: loss against a numpy formula, XLA per replica, two
logical devices equal one, save/load round trip."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from conftest import mirrored_strategy
from roundtrip import assert_round_trip
from mltf import models

C = 3


def tiny_backbone(batch_norm=False, name="tiny"):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = (rng.random((n, C)) < 0.4).astype("float32")
    return x, y


def make_model(xla=False, batch_norm=False, lr=0.1, seed=1):
    keras.utils.set_random_seed(seed)
    model = models.MultiLabelClassifier(tiny_backbone(batch_norm), C,
                                        label_names=["a", "b", "c"])
    model.build((None, 8, 8, 3))
    model.compile(optimizer=keras.optimizers.SGD(lr), xla=xla)
    return model


def numpy_bce(y, logits):
    # Stable form of -[y log s(z) + (1-y) log(1-s(z))], mean over all entries.
    return np.mean(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))


def test_loss_matches_numpy_and_step_descends():
    model = make_model()
    x, y = data()
    logits = model(x, return_logits=True).numpy()
    expected = numpy_bce(y, logits)
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5, atol=1e-6)
    before = logs["loss"]
    model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["loss"] < before


def test_gradient_step_matches_hand_computed_sgd():
    # One SGD step on the head only (frozen backbone): W <- W - lr * dL/dW with
    # dL/dz = (sigmoid(z) - y) / (N * C) for the mean BCE.
    model = make_model(lr=0.5)
    model.backbone.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.5), xla=False)
    x, y = data()
    feats = model.backbone(x).numpy()
    w, b = [v.numpy() for v in model.head.weights]
    z = feats @ w + b
    dz = (1 / (1 + np.exp(-z)) - y) / y.size
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.head.kernel.numpy(), w - 0.5 * feats.T @ dz, atol=1e-5)
    np.testing.assert_allclose(model.head.bias.numpy(), b - 0.5 * dz.sum(0), atol=1e-5)


def test_xla_step_equals_plain_step():
    x, y = data()
    a, b = make_model(xla=False), make_model(xla=True)
    for m in (a, b):
        m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    assert b._step_fn._jit_compile and not a._step_fn._jit_compile


def _strategy(n):
    return mirrored_strategy(n)


@pytest.mark.parametrize("xla", [False, True])
def test_two_logical_devices_equal_one(xla):
    x, y = data(8)
    results = []
    for n in (1, 2):
        with _strategy(n).scope():
            model = make_model(xla=xla)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        model.fit(ds, epochs=3, verbose=0)
        results.append(model.get_weights())
        assert model._step_fn._jit_compile == xla
    for w1, w2 in zip(*results):
        np.testing.assert_allclose(w1, w2, rtol=1e-4, atol=1e-6)


def test_batch_norm_statistics_synced_across_replicas():
    x, y = data(8)
    with _strategy(2).scope():
        model = make_model(xla=True, batch_norm=True)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    bn = model.backbone.get_layer("bn")
    values = [v.numpy() for v in bn.moving_mean.value.values]
    np.testing.assert_allclose(values[0], values[1])
    assert not np.allclose(values[0], 0.0)


def test_save_load_round_trip_with_thresholds(tmp_path):
    model = make_model()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    model.set_thresholds([0.3, 0.5, 0.7])
    loaded = assert_round_trip(model, tmp_path, x, atol=1e-6)
    assert isinstance(loaded, models.MultiLabelClassifier)
    assert loaded.label_names == ["a", "b", "c"] and loaded.num_labels == C
    np.testing.assert_allclose(loaded.thresholds.numpy(), [0.3, 0.5, 0.7])
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert loaded.get_config()["backbone"]["config"]["name"] == "tiny"
    # Compile state and optimizer come back too, so training can continue.
    assert loaded.xla == model.xla and loaded.optimizer is not None
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    loaded.fit(x, y, epochs=1, verbose=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 label names for 3 labels"):
        models.MultiLabelClassifier(tiny_backbone(), 3, label_names=["a", "b"])
    model = models.MultiLabelClassifier(tiny_backbone(), 3)
    with pytest.raises(ValueError, match="build the model"):
        model.compile(optimizer="sgd")
    model.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="'loss' is fixed"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="use xla=True"):
        model.compile(optimizer="sgd", jit_compile=True)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="need 3 thresholds"):
        model.set_thresholds([0.5])


def test_resolve_xla():
    from mltf.core import steps
    assert steps.resolve_xla(True) is True and steps.resolve_xla(False) is False
    assert steps.resolve_xla("auto") == bool(tf.config.list_physical_devices("GPU"))
    with pytest.raises(ValueError, match="xla must be"):
        steps.resolve_xla("yes")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_head(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = make_model(xla=False)
        x, y = data()
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        assert model.backbone.get_layer("conv").compute_dtype == policy.split("_")[1]
        assert model.head.compute_dtype == "float32"
        assert model.predict(x, verbose=0).dtype == np.float32
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        assert np.isfinite(logs["loss"])
        if policy == "mixed_float16":  # dynamic loss scaling is in place
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")
