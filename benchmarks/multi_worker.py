r"""Training speed of ``python -m mltf.train`` on one machine: one process
on one device, one process mirrored over 2 logical CPU devices, and two
MultiWorkerMirroredStrategy workers (TF_CONFIG on 127.0.0.1), side by side
in alternating rounds, on the same global batch.

  .venv/bin/python benchmarks/multi_worker.py --rounds=2 --steps=60

Builds the offline demo dataset in a temporary folder. Steps/s is the
trainer's own ``train_seconds`` (fit, one full-set evaluation included) over
``steps`` updates, so process start-up and the cluster handshake are left
out. On 2 shared cores the three share the same silicon: the ratios measure
what the distribution machinery costs, not a speed-up.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 2, "Alternating rounds.")
flags.DEFINE_integer("steps", 60, "Training steps per run (one epoch).")
flags.DEFINE_integer("batch_size", 16, "Global batch.")
flags.DEFINE_integer("timeout", 600, "Seconds any one run may take.")


def _run(arm, data_dir, out_dir):
    bindings = [f"pipelines.InputConfig.data_dir = '{data_dir}'",
                f"pipelines.InputConfig.batch_size = {FLAGS.batch_size}",
                "mltf.train.epochs = 1", f"mltf.train.steps_per_epoch = {FLAGS.steps}",
                "mltf.train.tune_thresholds = False"]
    if arm == "1 worker x 2 logical devices":
        bindings.append("mltf.train.strategy = 'cpu:2'")
    cmd = [sys.executable, "-m", "mltf.train", "--config=configs/demo.gin",
           f"--model_dir={out_dir}", *[f"--gin_bindings={b}" for b in bindings]]
    from mltf.core import distribute
    workers = 2 if arm.startswith("2 workers") else 1
    configs = distribute.loopback_cluster(workers)
    procs = []
    for i in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if workers > 1:
            env["TF_CONFIG"] = configs[i]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        for p in procs:
            _, err = p.communicate(timeout=FLAGS.timeout)
            if p.returncode:
                sys.exit(f"{arm} failed:\n{err[-3000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with open(os.path.join(out_dir, "metrics.json")) as f:
        report = json.load(f)
    return FLAGS.steps / report["train_seconds"], report["replicas"]


def main(argv):
    del argv
    from mltf.data import sources, writer
    tmp = tempfile.mkdtemp(prefix="mltf-bench-mw-")
    data_dir = os.path.join(tmp, "demo")
    writer.write_dataset(sources.load("demo", sources.SourceOptions()), data_dir,
                         progress=False)
    arms = ["1 worker x 1 device", "1 worker x 2 logical devices",
            "2 workers x 1 device (MultiWorkerMirroredStrategy)"]
    rates = {arm: [] for arm in arms}
    for r in range(FLAGS.rounds):
        for arm in arms:
            rate, replicas = _run(arm, data_dir, os.path.join(tmp, f"r{r}-{arms.index(arm)}"))
            rates[arm].append(rate)
            print(f"round {r}: {arm}: {rate:.1f} steps/s ({replicas} replicas)", flush=True)
    base = statistics.median(rates[arms[0]])
    print(f"\ndemo config (small CNN, 56 px), global batch {FLAGS.batch_size}, "
          f"{FLAGS.steps} steps, medians of {FLAGS.rounds} rounds")
    for arm in arms:
        med = statistics.median(rates[arm])
        print(f"  {arm:52s} {med:6.1f} steps/s  ratio to 1 device {med / base:.2f}")


if __name__ == "__main__":
    app.run(main)
