"""Kill soak: ``python -m mltf.train`` killed with SIGKILL at random moments,
half of them inside a checkpoint write (each write paused by the
``MLTF_TEST_PAUSE_WRITES`` hook, so the kill lands there for sure), restarted
each time with the same command; then run to the end and checked: every
restart resumed from the newest committed epoch, exactly ``epochs x steps``
optimizer updates, one log row and one TensorBoard point per epoch, every
``.keras`` file loads, ``best.keras`` is the best epoch's model.

The default run kills a few times per method; ``-m slow`` runs 50 kills
(figures in the README)."""

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time

import keras
import pytest

from mltf import methods
from conftest import ROOT, tiny_bindings
from test_run_state import event_scalars

methods.load_all()  # the model classes the runs save, for loading them

PAUSE = 0.3  # seconds each checkpoint write is held open in the soak


def _committed(model_dir, phase):
    folder = os.path.join(model_dir, "backup", *([phase] if phase else []))
    if not os.path.isdir(folder):
        return 0
    done = [int(m.group(1)) for m in map(re.compile(r"^state-(\d{6})\.json$").match,
                                          os.listdir(folder)) if m]
    return max(done, default=0)


def _args(model_dir, method, demo_dir, epochs, steps):
    extra = {"mltf.train.epochs": epochs, "mltf.train.steps_per_epoch": steps,
             "mltf.train.xla": False}
    config = {"bce": "demo.gin", "wgan_gp": "demo_wgangp.gin",
              "retdm": "miml_scene_small_cnn_retdm.gin"}[method]
    if method == "wgan_gp":
        extra.update({"mltf.train.pretrain_epochs": 1, "mltf.train.initial_model": None})
    if method == "retdm":
        extra.update({"mltf.build_backbone.embedding_dim": 16,
                      "mltf.build_retdm.label_units": 16,
                      "mltf.build_retdm.classification_epochs": 1,
                      "mltf.build_retdm.embedding_epochs": 1,
                      "mltf.train.callbacks": "[@keras.callbacks.ReduceLROnPlateau()]"})
    bindings = tiny_bindings(demo_dir, **extra)
    return ["--config=" + os.path.join("configs", config), f"--model_dir={model_dir}",
            *[f"--gin_bindings={b}" for b in bindings]]


def soak(method, demo_dir, model_dir, kills, epochs, steps, seed=0):
    """Kills and restarts the run ``kills`` times, then lets it finish;
    returns figures of the kills."""
    rng = random.Random(seed)
    pause_log = str(model_dir) + ".pauses"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLTF_TEST_PAUSE_WRITES=str(PAUSE),
               MLTF_TEST_PAUSE_LOG=pause_log)
    args = [sys.executable, "-m", "mltf.train",
            *_args(model_dir, method, demo_dir, epochs, steps)]
    figures = {"kills": 0, "inside_write": 0, "writes_hit": {}, "restarts_resumed": 0,
               "finished_early": 0}
    open(pause_log, "a").close()

    def finished():  # the outputs are written and the backup is gone
        return (os.path.exists(os.path.join(model_dir, "metrics.json"))
                and not os.path.exists(os.path.join(model_dir, "backup")))

    for attempt in range(kills):
        if finished():  # a kill after the last write: nothing left to resume
            figures["finished_early"] += 1
            break
        committed = {p: _committed(model_dir, p) for p in ("", "pretraining")}
        out_path = f"{model_dir}.attempt{attempt}.log"
        start_size = os.path.getsize(pause_log)
        with open(out_path, "w") as out:
            proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
            deadline = time.time() + 120
            if rng.random() < 0.5:  # inside the k-th write from now
                skip = rng.randrange(8)
                while proc.poll() is None and time.time() < deadline:
                    with open(pause_log) as f:
                        f.seek(start_size)
                        lines = f.read().splitlines()
                    begun = sum(line.startswith("begin") for line in lines)
                    if begun > skip and lines[-1].startswith("begin"):
                        time.sleep(rng.uniform(0.0, PAUSE * 0.8))
                        break
                    time.sleep(0.02)
            else:  # anywhere: start-up, a step, the evaluation, a write
                end = time.time() + rng.uniform(1.0, 12.0)
                while proc.poll() is None and time.time() < end:
                    time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                figures["kills"] += 1
            proc.wait(timeout=60)
        output = open(out_path).read()
        if proc.returncode == 0:  # it finished before the kill came
            figures["finished_early"] += 1
            break
        assert proc.returncode == -signal.SIGKILL, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert "mltf.train: error" not in output, output[-3000:]
        with open(pause_log) as f:
            f.seek(start_size)
            lines = f.read().splitlines()
        if lines and lines[-1].startswith("begin"):
            figures["inside_write"] += 1
            name = re.sub(r"\d{6}", "N", lines[-1].split(" ", 1)[1])
            figures["writes_hit"][name] = figures["writes_hit"].get(name, 0) + 1
        # What the restart found must be the newest committed epoch.
        for phase, done in committed.items():
            label = "pretraining" if phase else "run"
            m = re.search(rf"resuming the {label} after epoch (\d+)", output)
            if m:
                figures["restarts_resumed"] += 1
                assert int(m.group(1)) == done, output[-3000:]
    if not finished():
        final = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-3000:]
    return figures


def check_finished_run(model_dir, method, epochs, steps, demo_dir):
    names = set(os.listdir(model_dir))
    assert {"model.keras", "metrics.json", "training_log.csv", "checkpoints",
            "tensorboard"} <= names
    assert "backup" not in names
    leftovers = [os.path.join(r, n) for r, _, fs in os.walk(model_dir) for n in fs
                 if n.startswith((".tmp-", ".pending-"))]
    assert not leftovers
    rows = list(csv.DictReader(open(os.path.join(model_dir, "training_log.csv"))))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    scalars = event_scalars(os.path.join(model_dir, "tensorboard"))
    epoch_tags = {t: s for t, s in scalars.items() if "/epoch_" in t and "pretrain" not in t}
    assert epoch_tags and all(s == list(range(epochs)) for s in epoch_tags.values()), epoch_tags
    models = {}
    for root, _, files in os.walk(model_dir):
        for name in files:
            if name.endswith(".keras"):
                models[name] = keras.models.load_model(os.path.join(root, name))
    last = models["last.keras"]
    if method == "wgan_gp":
        assert int(last.generator_optimizer.iterations.numpy()) == epochs * steps
        assert int(last.critic_optimizer.iterations.numpy()) == last.n_critic * epochs * steps
        pre = list(csv.DictReader(open(os.path.join(model_dir, "pretrain_log.csv"))))
        assert [int(r["epoch"]) for r in pre] == [0]
        assert "pretrained.keras" in models
    else:
        assert int(last.optimizer.iterations.numpy()) == epochs * steps
    if method == "bce":
        assert int(models["model.keras"].optimizer.iterations.numpy()) == epochs * steps
        # best.keras is the model of the best logged epoch.
        from mltf import metrics
        from mltf.inference import predict_dataset
        from pipelines import InputConfig, make_dataset
        # The logged val_* are the selection split's (mltf.training.selection).
        chosen = tuple(open(os.path.join(model_dir, "select_ids.txt")).read().split())
        ds = make_dataset(InputConfig(demo_dir, "train", batch_size=16, training=False,
                                      image_size=24, preprocessing="unit", keep_ids=chosen))
        y, s = predict_dataset(models["best.keras"], ds)
        best = max(float(r["val_mAP"]) for r in rows)
        assert metrics.compute_all(y, s)["mAP"] == pytest.approx(best, abs=1e-6)
    if method == "retdm":
        assert [float(r["retdm_stage"]) for r in rows] == [1.0, 2.0] + [3.0] * (epochs - 2)


@pytest.mark.parametrize("method,kills,epochs,steps", [
    # WGAN-gp's and RETDM's resumes are also checked bit for bit in
    # test_run_state.py and test_wgan_warmup.py; their CLI soaks here are kept
    # for -m slow (time).
    ("bce", 3, 3, 4), pytest.param("wgan_gp", 3, 2, 2, marks=pytest.mark.slow),
    pytest.param("retdm", 2, 3, 3, marks=pytest.mark.slow)])
def test_killed_runs_always_resume(method, kills, epochs, steps, demo_dir, tmp_path):
    model_dir = tmp_path / "run"
    figures = soak(method, demo_dir, str(model_dir), kills, epochs, steps, seed=kills)
    check_finished_run(str(model_dir), method, epochs, steps, demo_dir)
    assert figures["kills"] + figures["finished_early"] >= 1
    print(method, figures)


@pytest.mark.slow
@pytest.mark.parametrize("method,kills,epochs,steps", [
    ("bce", 50, 12, 5), ("wgan_gp", 20, 4, 3), ("retdm", 20, 5, 3)])
def test_killed_runs_always_resume_soak(method, kills, epochs, steps, demo_dir, tmp_path):
    model_dir = tmp_path / "run"
    start = time.time()
    figures = soak(method, demo_dir, str(model_dir), kills, epochs, steps, seed=1)
    check_finished_run(str(model_dir), method, epochs, steps, demo_dir)
    figures["seconds"] = round(time.time() - start)
    print(f"\nsoak {method}: {figures}")
    assert figures["finished_early"] == 0, "the run finished before all kills: lengthen it"
    assert figures["inside_write"] >= kills // 4
