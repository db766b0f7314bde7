"""MultiWorkerMirroredStrategy with 2 worker processes x 1 CPU device trains
the same weights as one process with a MirroredStrategy over 2 logical CPU
devices, on the same global batches, for the BCE classifier, WGAN-gp and
RETDM (through ``model.fit``, the real Keras path).

The training runs in fresh subprocesses (tests/training/multi_worker_step.py): this
pytest process already has its CPU split into logical devices (conftest),
and MWMS must be created before any op. The two workers and the mirrored
run start together (about 30 s in all on 2 cores). Everything listens on
127.0.0.1 only, and the processes have one bounded timeout: all of them are
killed as soon as one fails, or when the time runs out.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from mltf.core import distribute

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "multi_worker_step.py")
METHODS = ("bce", "wgan_gp", "retdm")
RUNS = ("worker0", "worker1", "mirrored")
STEPS = 3
N_CRITIC = 3  # multi_worker_step.py builds WGAN-gp with n_critic=3
TIMEOUT_S = 240
# What a gRPC server prints when its port was taken after loopback_cluster closed it.
PORT_CLASH = ("address already in use", "failed to add port", "could not start grpc server")


def child_env(tf_config=None):
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU devices only, on any machine
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return env


def _read(path, chars=None):
    with open(path, errors="replace") as f:
        text = f.read()
    return text if chars is None else text[-chars:]


def run_processes(specs, timeout_s=TIMEOUT_S):
    """Starts ``(args, env, log_path)`` worker-script processes together and
    waits for all of them, ``timeout_s`` in total. Kills every one still
    running as soon as one exits with an error, or at the deadline, and then
    raises with the failing log's tail. Returns the logs' text."""
    procs = []
    try:
        for args, env, log_path in specs:
            with open(log_path, "w") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, WORKER, *args], cwd=ROOT, env=env,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout_s
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, rc in enumerate(codes) if rc not in (None, 0)]
            if failed:
                i = failed[0]
                raise AssertionError(f"{specs[i][2]}: exit status {codes[i]}\n"
                                     + _read(specs[i][2], 4000))
            if all(rc == 0 for rc in codes):
                break
            if time.monotonic() > deadline:
                running = [specs[i][2] for i, rc in enumerate(codes) if rc is None]
                raise AssertionError(f"no result within {timeout_s} s from {running}\n"
                                     + _read(running[0], 4000))
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.wait(timeout=30)
    return [_read(spec[2]) for spec in specs]


def train_all(tmp_dir, methods=METHODS, steps=STEPS, xla=False, timeout_s=TIMEOUT_S,
              tries=2):
    """Runs the 2-worker MWMS cluster and the 1-process 2-device mirrored run
    (concurrently); the npz files are ``tmp_dir/<run>.<method>.npz`` for
    ``RUNS``. Returns the logs. Starts again (new ports) if a worker's port
    was taken in the meantime."""
    for attempt in range(tries):
        configs = distribute.loopback_cluster(2)

        def args(mode, name):
            return ([",".join(methods), mode, str(steps), os.path.join(tmp_dir, name)]
                    + (["--xla"] if xla else []))

        specs = [(args("multi_worker", f"worker{i}"),
                  child_env(configs[i]),
                  os.path.join(tmp_dir, f"worker{i}.log")) for i in range(2)]
        specs.append((args("mirrored", "mirrored"), child_env(),
                      os.path.join(tmp_dir, "mirrored.log")))
        try:
            return run_processes(specs, timeout_s)
        except AssertionError as e:
            if attempt + 1 == tries or not any(s in str(e).lower() for s in PORT_CLASH):
                raise


def load_results(tmp_dir, methods=METHODS):
    return {m: {run: dict(np.load(os.path.join(tmp_dir, f"{run}.{m}.npz"))) for run in RUNS}
            for m in methods}


def _timings(logs):
    return [line for log in logs for line in log.splitlines() if line.startswith("TIMING")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp_dir = str(tmp_path_factory.mktemp("multi_worker"))
    print("\n".join(_timings(train_all(tmp_dir))))
    return load_results(tmp_dir)


def _variables(result):
    """The keys of model variables (``w<i>``) and optimizer variables."""
    return [k for k in result if k[0] == "w" and k[1:].isdigit() or k.startswith("opt_")]


def _changed(result, i):
    return not np.array_equal(result[f"w{i}"], result[f"init{i}"])


def check_same_training(runs, method):
    """Both workers hold identical values, equal to the mirrored run's up to
    float rounding; returns the largest difference."""
    w0, w1, mirrored = (runs[k] for k in RUNS)
    names = list(mirrored["names"])
    assert list(w0["names"]) == names and list(w1["names"]) == names
    keys = _variables(mirrored)
    assert sorted(_variables(w0)) == sorted(keys) == sorted(_variables(w1))
    worst = 0.0
    for key in keys:
        label = names[int(key[1:])] if key[0] == "w" else key
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=label)
        np.testing.assert_allclose(w0[key], mirrored[key], rtol=1e-5, atol=1e-5,
                                   err_msg=label)
        diff = np.abs(w0[key].astype(np.float64) - mirrored[key].astype(np.float64))
        worst = max(worst, float(np.max(diff, initial=0.0)))
    # Training moved most weights, so the comparison is not trivially equal.
    moved = sum(_changed(mirrored, i) for i in range(len(names)))
    assert moved >= len(names) // 2, (moved, names)
    for r in (w0, w1, mirrored):
        if method == "wgan_gp":
            assert int(r["iterations_generator"]) == STEPS
            assert int(r["iterations_critic"]) == N_CRITIC * STEPS
        else:
            assert int(r["iterations_optimizer"]) == STEPS
    return worst


@pytest.mark.parametrize("method", METHODS)
def test_two_workers_equal_two_logical_devices(results, method):
    worst = check_same_training(results[method], method)
    print(f"{method}: max |MWMS - mirrored| = {worst:.3g}")


@pytest.mark.parametrize("method", METHODS)
def test_fit_and_evaluate_logs_agree(results, method):
    """The logged step outputs (shape [1] under MWMS, steps.step_logs) reduce
    to the values the mirrored run logs, in fit and in evaluate."""
    w0, w1, mirrored = (results[method][k] for k in RUNS)
    keys = [k for k in mirrored if k.startswith(("fit_", "eval_"))]
    assert any(k.startswith("fit_") for k in keys) and any(k.startswith("eval_") for k in keys)
    assert sorted(k for k in w0 if k.startswith(("fit_", "eval_"))) == sorted(keys)
    for key in keys:
        assert w0[key].shape == () and np.isfinite(w0[key]), key
        np.testing.assert_allclose(w0[key], w1[key], rtol=1e-6, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(w0[key], mirrored[key], rtol=1e-5, atol=1e-5, err_msg=key)


EXPECTED_MOVES = {  # part: whether training changes it
    "bce": {"backbone": True, "head": True},
    "wgan_gp": {"generator": True, "critic": True, "fext": False},
    "retdm": {"classifier": True, "label_hidden": True, "label_embedding": True,
              "reconstruction": True, "bank": True},
}


@pytest.mark.parametrize("method", METHODS)
def test_every_trained_part_moved(results, method):
    """What the comparison covers: BatchNorm statistics (synced over the
    workers), critic and generator (fext fixed), RETDM's label networks and
    memory bank (read from step 2 on)."""
    r = results[method]["mirrored"]
    names, parts = list(r["names"]), list(r["parts"])
    for part, moves in EXPECTED_MOVES[method].items():
        idx = [i for i, p in enumerate(parts) if p == part]
        assert idx, (part, parts)
        assert any(_changed(r, i) for i in idx) == moves, part
    if method == "bce":
        assert all(_changed(r, i) for i, n in enumerate(names) if "moving_" in n)
    if method == "retdm":
        assert float(r["fit_j2_active"]) > 0  # J2 used bank rows


@pytest.mark.slow
def test_two_workers_equal_two_logical_devices_with_xla(tmp_path):
    """The same with the per-replica steps XLA-compiled (about 60 s)."""
    train_all(str(tmp_path), xla=True, timeout_s=400)
    for method, runs in load_results(str(tmp_path)).items():
        check_same_training(runs, method)
