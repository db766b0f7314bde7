"""``python -m mltf.train`` as two MultiWorkerMirroredStrategy workers on this
machine (TF_CONFIG on 127.0.0.1 only, every process with a time limit): BCE,
WGAN-gp (with its BCE pretraining phase) and RETDM run to the end with only
the chief writing the run folder; a killed worker stops the job with a clear
message and the restarted job resumes with exactly ``epochs x steps``
updates."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from mltf import models, retdm, wgan  # noqa: F401  (registers the classes to load)
from mltf.core import distribute
from test_soak import _args
from conftest import ROOT

LIMIT = 240  # seconds any one worker may run


def launch(args, tmp_path, tag, workers=2, log_level="3"):
    """Starts the workers; returns (processes, log paths)."""
    configs = distribute.loopback_cluster(workers)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    procs, logs = [], []
    for i in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=log_level, TMPDIR=str(tmp_path / "tmp"),
                   TF_CONFIG=configs[i])
        log = tmp_path / f"{tag}.worker{i}.log"
        with open(log, "w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "mltf.train", *args], cwd=ROOT, env=env,
                stdout=out, stderr=subprocess.STDOUT))
        logs.append(log)
    return procs, logs


def wait_all(procs, logs, limit=LIMIT):
    deadline = time.time() + limit
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [p.returncode for p in procs], [open(log).read() for log in logs]


@pytest.mark.parametrize("method,epochs,steps,xla", [
    ("bce", 2, 3, True),
    # The WGAN-gp and RETDM multi-worker steps are checked against 2 devices
    # in test_multi_worker.py; their CLI runs here are kept for -m slow (time).
    pytest.param("wgan_gp", 2, 2, False, marks=pytest.mark.slow),
    pytest.param("retdm", 3, 2, False, marks=pytest.mark.slow)])
def test_two_workers_train_and_only_the_chief_writes(method, epochs, steps, xla, demo_dir,
                                                      tmp_path):
    run = tmp_path / "run"
    args = _args(str(run), method, demo_dir, epochs, steps) + [
        f"--gin_bindings=mltf.train.xla = {xla}"]
    procs, logs = launch(args, tmp_path, "job", log_level="0" if xla else "3")
    codes, outputs = wait_all(procs, logs)
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    if xla:  # the per-replica step compiled on both workers (TF's own log line)
        assert all("Compiled cluster using XLA" in out for out in outputs)
    assert "written by the chief" in outputs[1]
    report = json.loads((run / "metrics.json").read_text())
    assert (report["workers"], report["replicas"]) == (2, 2)
    rows = list(csv.DictReader(open(run / "training_log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert os.listdir(tmp_path / "tmp") == []  # the other worker's folder is gone
    assert "backup" not in os.listdir(run)
    last = keras.models.load_model(run / "checkpoints" / "last.keras")
    opt = last.generator_optimizer if method == "wgan_gp" else last.optimizer
    assert int(opt.iterations.numpy()) == epochs * steps
    if method == "wgan_gp":
        assert (run / "pretrained.keras").exists()
    if method == "retdm":
        assert [float(r["retdm_stage"]) for r in rows] == [1.0, 2.0, 3.0]


# Single-process kills are soaked in test_soak.py's default run; the two-worker
# kill is kept for -m slow (time).
@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_the_restarted_job_resumes(demo_dir, tmp_path):
    epochs, steps = 3, 12
    run = tmp_path / "run"
    args = _args(str(run), "bce", demo_dir, epochs, steps)
    procs, logs = launch(args, tmp_path, "first")
    committed = run / "backup" / "state-000001.json"
    deadline = time.time() + LIMIT
    while not committed.exists() and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.05)
    assert committed.exists(), open(logs[0]).read()[-3000:]
    procs[1].send_signal(signal.SIGKILL)
    codes, outputs = wait_all(procs, logs, limit=120)
    assert codes[1] == -signal.SIGKILL
    assert codes[0] == 1, outputs[0][-3000:]
    assert "another worker of this multi-worker run stopped" in outputs[0]
    assert "Traceback" not in outputs[0]

    # --verbose: Keras's per-step lines, whose losses both workers must share.
    procs, logs = launch(args + ["--verbose"], tmp_path, "restart")
    codes, outputs = wait_all(procs, logs)
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "resuming the run after epoch" in outputs[0]
    rows = list(csv.DictReader(open(run / "training_log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    last = keras.models.load_model(run / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == epochs * steps
    # Both workers trained the same model after the resume (the broadcast).
    losses = [[line.split("loss: ")[1].split()[0] for line in out.splitlines()
               if "/step" in line and " loss: " in line] for out in outputs]
    assert losses[0] and losses[0] == losses[1]
