"""The moving average of the weights (``mltf.train.ema_momentum``): the
per-epoch evaluation, the checkpoints and ``model.keras`` hold the average
of the raw weights each step gave (a numpy EMA of the weights a probe
recorded), training continues from the raw weights, and a resumed run keeps
the average."""

import csv

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import (mirrored_strategy, tiny_bindings, tiny_classifier, tiny_features,
                      train_in_process)
from mltf import metrics, methods
from mltf.training import callbacks as cbs_lib
from mltf.training import run_state

MOMENTUM = 0.5  # a short run's average that differs clearly from the last weights
RECORDED, NON_TRAINABLE = [], []


class WeightRecorder(keras.callbacks.Callback):
    """A test probe: appends the trainable weights after every step to
    ``RECORDED``, the others (BatchNorm statistics) to ``NON_TRAINABLE``.

    Args:
      (none)
    """

    def on_train_batch_end(self, batch, logs=None):
        RECORDED.append([keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables])
        NON_TRAINABLE.append([keras.ops.convert_to_numpy(v)
                              for v in self.model.non_trainable_variables])


gin.external_configurable(WeightRecorder, module="mltf_tests")


def numpy_ema(steps, momentum=MOMENTUM):
    """Keras's ``use_ema``: the first step copies, then m * avg + (1 - m) * w."""
    average, out = None, []
    for weights in steps:
        average = ([w.copy() for w in weights] if average is None
                   else [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)])
        out.append(average)
    return out


def trainable(model):
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


def assert_weights(actual, expected, atol=1e-6):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-5)


def run(demo_dir, folder, **extra):
    RECORDED.clear()
    NON_TRAINABLE.clear()
    train_in_process("demo.gin", folder, tiny_bindings(demo_dir, **{
        "mltf.train.steps_per_epoch": 2, "mltf.train.xla": False,
        "mltf.train.learning_rate": 0.05,
        "mltf.train.callbacks": "[@mltf_tests.WeightRecorder()]", **extra}))
    return list(RECORDED)


def test_evaluation_checkpoints_and_model_use_the_average(demo_dir, tmp_path):
    steps = run(demo_dir, tmp_path / "ema", **{"mltf.train.ema_momentum": MOMENTUM})
    non_trainable = list(NON_TRAINABLE)
    assert len(steps) == 4  # 2 epochs of 2 steps
    average = numpy_ema(steps)
    folder = tmp_path / "ema"
    model = keras.models.load_model(folder / "model.keras")
    assert_weights(trainable(model), average[3])
    assert max(np.abs(a - r).max() for a, r in zip(average[3], steps[3])) > 1e-3
    rows = list(csv.DictReader(open(folder / "training_log.csv")))
    best = max(range(2), key=lambda e: float(rows[e]["val_mAP"]))
    assert_weights(trainable(keras.models.load_model(folder / "checkpoints" / "last.keras")),
                   average[3])
    assert_weights(trainable(keras.models.load_model(folder / "checkpoints" / "best.keras")),
                   average[2 * best + 1])
    # Each epoch's val metrics are those of that epoch's average.
    from mltf.inference import predict_dataset
    from pipelines import InputConfig, make_dataset
    # The per-epoch evaluation is on the selection split (mltf.training.selection).
    chosen = tuple((folder / "select_ids.txt").read_text().split())
    ds = make_dataset(InputConfig(demo_dir, "train", batch_size=16, training=False,
                                  image_size=24, preprocessing="unit", keep_ids=chosen))
    for epoch in range(2):
        # BatchNorm statistics are not averaged: the epoch's own.
        for variable, value in zip(model.trainable_variables + model.non_trainable_variables,
                                   average[2 * epoch + 1] + non_trainable[2 * epoch + 1]):
            variable.assign(value)
        y, s = predict_dataset(model, ds)
        assert float(rows[epoch]["val_loss"]) == pytest.approx(cbs_lib.bce(y, s), rel=1e-5)
        assert float(rows[epoch]["val_mAP"]) == pytest.approx(
            metrics.compute_all(y, s)["mAP"], abs=1e-6)


@pytest.mark.parametrize("method, bindings, message", [
    ("wgan_gp", {"mltf.train.ema_momentum": 0.9}, "not supported with method 'wgan_gp'"),
    # Keras's own switch on the configured optimizer is seen too.
    ("retdm", {"mltf.train.optimizer": "@keras.optimizers.Adam()",
               "mltf.train.learning_rate": None, "keras.optimizers.Adam.use_ema": True},
     "not supported with method 'retdm'"),
    ("wgan_gp", {"mltf.train.generator_optimizer": "@keras.optimizers.Adam()",
                 "keras.optimizers.Adam.use_ema": True},
     "mltf.train.generator_optimizer: use_ema is not supported"),
], ids=["wgan_gp", "retdm", "wgan_gp-generator"])
def test_methods_without_it_refuse_it(demo_dir, tmp_path, method, bindings, message):
    with pytest.raises(methods.SettingsError, match=message):
        run(demo_dir, tmp_path, **{"mltf.train.method": f"'{method}'", **bindings})


def compiled(use_ema=True):
    model = tiny_classifier(3)
    model.compile(optimizer=keras.optimizers.Adam(0.05, use_ema=use_ema, ema_momentum=MOMENTUM),
                  xla=False)
    return model


def fit(model, state, first, epochs):
    x, y = tiny_features(16, 3)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    RECORDED.clear()
    model.fit(ds, initial_epoch=first, epochs=epochs, verbose=0,
              callbacks=[WeightRecorder(), cbs_lib.FullSetEvaluation(ds), state])
    return list(RECORDED)


def state_in(folder):
    return run_state.RunState(str(folder / "backup"), str(folder / "log.csv"),
                              checkpoint_dir=str(folder / "ckpt"))


def test_a_resumed_run_keeps_the_average(tmp_path):
    whole = compiled()
    steps = fit(whole, state_in(tmp_path / "whole"), 0, 2)
    assert_weights(trainable(whole), numpy_ema(steps)[-1])
    # The evaluation and checkpoints swap the raw weights back: the same
    # steps as without an average.
    for a, b in zip(fit(compiled(use_ema=False), state_in(tmp_path / "raw"), 0, 2), steps):
        assert_weights(a, b)

    first = compiled()
    first_steps = fit(first, state_in(tmp_path / "cut"), 0, 1)  # then killed
    resumed, state = compiled(), state_in(tmp_path / "cut")
    assert state.restore(resumed) == 1
    assert_weights(trainable(resumed), first_steps[-1])  # raw weights come back
    second_steps = fit(resumed, state, 1, 2)
    for a, b in zip(first_steps + second_steps, steps):
        assert_weights(a, b)
    # Only a restored average gives the uninterrupted run's (a fresh one
    # would restart from the first resumed step's weights).
    assert_weights(trainable(resumed), trainable(whole))
    assert_weights(trainable(keras.models.load_model(tmp_path / "cut" / "ckpt" / "last.keras")),
                   numpy_ema(steps)[-1])


def test_two_logical_devices_equal_one(tmp_path):
    results, raw = [], []
    for n in (1, 2):
        with mirrored_strategy(n).scope():
            model = compiled()
        raw.append(fit(model, state_in(tmp_path / str(n)), 0, 2))
        assert_weights(trainable(model), numpy_ema(raw[-1])[-1])
        results.append(trainable(model))
    # Equal raw steps: every replica got its raw weights back after each
    # epoch's swap (a replica left on the average would change the summed gradient).
    for a, b in zip(*raw):
        assert_weights(b, a, atol=1e-5)
    assert_weights(results[1], results[0], atol=1e-5)
