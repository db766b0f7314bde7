"""What ``python -m mltf.train`` prints: no TensorFlow start-up noise, one
compact line per epoch, the final table; ``--verbose`` brings Keras's lines
and TensorFlow's start-up logging back."""

import os
import re
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest

from conftest import ROOT, tiny_bindings
from mltf import methods
from mltf.training import console
from mltf.utils import startup

NOISE = ("oneDNN", "cuda", "shuffle=True", "TF_ENABLE_ONEDNN_OPTS", "absl::InitializeLog",
         "cpu_feature_guard", "TFRecordDataset")
EPOCH_LINE = re.compile(r"^epoch [12]/2 - loss \d\.\d+ - val mAP \d+\.\d\d, C-F1 \d+\.\d\d, "
                        r"O-F1 \d+\.\d\d - \d+\.\d s$")


def _train(demo_dir, model_dir, *flags):
    # TensorFlow's log level as a user's shell has it: unset (conftest sets it
    # for this process).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    bindings = tiny_bindings(demo_dir, **{"mltf.train.steps_per_epoch": 2,
                                          "mltf.train.tune_thresholds": False})
    proc = subprocess.run(
        [sys.executable, "-m", "mltf.train", "--config=configs/demo.gin",
         f"--model_dir={model_dir}", *flags, *[f"--gin_bindings={b}" for b in bindings]],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_demo_run_prints_one_line_per_epoch_and_the_table(demo_dir, tmp_path):
    proc = _train(demo_dir, tmp_path / "run")
    assert proc.stderr == ""  # the start-up lines went, nothing else came
    lines = proc.stdout.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert len(epochs) == 2 and epochs[0] == 0  # nothing before the first epoch
    assert all(EPOCH_LINE.match(lines[i]) for i in epochs), lines[:2]
    assert lines[3] == "Evaluation on 40 images, 10 labels"  # the full table follows
    assert any(line.startswith("  mAP ") for line in lines)
    assert len(lines) <= 30
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr
    # The CSV log keeps every figure the line leaves out.
    header = (tmp_path / "run" / "training_log.csv").read_text().splitlines()[0].split(",")
    assert {"val_CP", "val_ranking_loss", "val_cooccurrence_gap", "learning_rate"} <= set(header)


@pytest.mark.slow  # a second training subprocess (about 13 s of CPU)
def test_verbose_brings_keras_lines_and_tensorflow_logging_back(demo_dir, tmp_path):
    proc = _train(demo_dir, tmp_path / "run", "--verbose")
    out = proc.stdout + proc.stderr
    assert "Epoch 1/2" in proc.stdout and "Epoch 2/2" in proc.stdout
    assert len(re.findall(r"^2/2 - .* - val_CP: .* - val_mAP: ", proc.stdout, re.M)) == 2
    assert not any(line.startswith("epoch ") for line in proc.stdout.splitlines())
    assert "oneDNN custom operations are on" in out  # TensorFlow's start-up lines
    assert "shuffle=True" not in out  # the fits pass shuffle=False: never shown


def test_epoch_line_by_hand():
    logs = {"loss": 0.28571, "val_mAP": 0.78414, "val_CF1": 0.621, "val_OF1": 0.64015,
            "val_CP": 0.5, "critic_loss": -1.23456, "wasserstein": 0.0001234}
    assert console.epoch_line(2, 15, logs, ("critic_loss", "wasserstein"), 9.84) == (
        "epoch  3/15 - loss 0.2857 - val mAP 78.41, C-F1 62.10, O-F1 64.02 - "
        "critic_loss -1.235, wasserstein 0.0001234 - 9.8 s")
    # An epoch without evaluation (eval_every), a phase, a missing key figure.
    assert console.epoch_line(0, 5, {"loss": 0.5}, ("j1",), 1.0, phase="pretrain") == (
        "pretrain epoch 1/5 - loss 0.5 - 1.0 s")


def test_progress_bar_is_replaced_by_the_line(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # Keras's bar redraws in place
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[console.EpochConsole(progress_bar=True)])
    out = capsys.readouterr().out
    pieces = out.split("\r\x1b[2K")
    assert len(pieces) == 3  # one erase per epoch
    assert all("/2" in p and "step - loss:" in p for p in pieces[:2])  # the bar, drawn
    assert pieces[1].startswith("epoch 1/2 - loss ") and pieces[2].startswith("epoch 2/2 - loss ")
    assert out.endswith(" s\n") and out.count("\n") == 2  # the bar left no line of its own


def test_methods_declare_their_key_figures():
    wgan, retdm = methods.get("wgan_gp"), methods.get("retdm")
    from mltf.methods.retdm.model import RETDMClassifier
    from mltf.methods.wgan_gp.model import WGANGPClassifier
    assert set(wgan.key_metrics) <= set(WGANGPClassifier.tracker_names)
    assert set(retdm.key_metrics) <= {*RETDMClassifier.tracker_names, "retdm_stage"}
    assert methods.get("bce").key_metrics == ()


def test_verbose_is_the_flags_not_gins():
    import mltf.train  # noqa: F401  (registers mltf.train)
    gin.clear_config()
    with pytest.raises(ValueError, match="denylisted kwarg 'verbose'"):
        gin.parse_config("mltf.train.verbose = 1")
    gin.clear_config()


@pytest.mark.parametrize("argv, expected", [
    (["prog", "--verbose"], True), (["prog", "--config=a.gin", "--verbose=true"], True),
    (["prog", "--noverbose"], False), (["prog", "--verbose=false"], False),
    (["prog", "--config=a.gin"], False), (["prog", "--verbose=maybe"], False)])
def test_bool_flag_in_argv(argv, expected):
    assert startup.bool_flag_in("verbose", argv) is expected


def test_only_the_noise_lines_are_dropped():
    kept = ("E0000 00:00:1.2 123 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
            "/x.py:3: DeprecationWarning: use y\n")
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written "
            "to STDERR\n"
            "I0000 00:00:1.1 7890 port.cc:153] oneDNN custom operations are on. You may see\n"
            + kept.splitlines(keepends=True)[0]
            + "I0000 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
            "available CPU instructions in performance-critical operations.\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild\n"
            + kept.splitlines(keepends=True)[1])
    assert startup.without_noise(text) == kept
