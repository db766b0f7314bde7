r"""Training-pipeline throughput against the raw decode + resize limit.

  python benchmarks/pipeline.py            # MIML scene images, 224 px
  python benchmarks/pipeline.py --data_dir=data/coco2014 --image_size=224

Measures, in one process and on the same records and cores:
  train: pipelines.make_dataset in training mode (interleave, shuffle, repeat,
         parse, decode, one random five-crop patch per image resized to
         --image_size, random flip, batch, prefetch);
  raw:   the limit: read, parse, decode and resize to --image_size, batch,
         prefetch, nothing else.
The two are measured in alternating rounds (the machine is shared and noisy)
and the median images/s of each is reported with their ratio (target >= 0.8)
and the peak resident memory of each measurement.

Without --data_dir the MIML scene images of ../shared/data/miml-scene are
converted once into a temporary folder (not timed).
"""

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "An mltf dataset (default: convert MIML scene).")
flags.DEFINE_string("csv", os.path.join(ROOT, "..", "shared", "data", "miml-scene",
                                        "labels.csv"), "CSV converted when no --data_dir.")
flags.DEFINE_string("split", "train", "Split to read.")
flags.DEFINE_integer("image_size", 224, "Output image side.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("batches", 60, "Timed batches per round.")
flags.DEFINE_integer("warmup", 10, "Untimed batches before each round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds per pipeline.")


def _reset_peak_rss():
    try:  # Linux: writing 5 resets VmHWM, the peak resident set size.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def raw_dataset(data_dir, split, image_size, batch_size):
    import tensorflow as tf
    from mltf.data import schema
    from pipelines import augment
    info = schema.read_info(data_dir)
    paths = [os.path.join(data_dir, s) for s in info.split(split).shards]
    spec = {schema.KEY_IMAGE: tf.io.FixedLenFeature([], tf.string)}

    def fn(record):
        encoded = tf.io.parse_single_example(record, spec)[schema.KEY_IMAGE]
        return augment.eval_resize(augment.decode(encoded), image_size)

    ds = tf.data.TFRecordDataset(paths, num_parallel_reads=tf.data.AUTOTUNE).repeat()
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def train_dataset(data_dir, split, image_size, batch_size):
    from pipelines import InputConfig, make_dataset
    return make_dataset(InputConfig(data_dir, split, batch_size=batch_size,
                                    image_size=image_size, training=True))


def measure(ds, batches, warmup, batch_size):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    _reset_peak_rss()
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed, _peak_rss_mb()


def main(argv):
    del argv
    import tensorflow as tf
    data_dir = FLAGS.data_dir
    tmp = None
    if data_dir is None:
        if not os.path.isfile(FLAGS.csv):
            sys.exit(f"{FLAGS.csv} not found: pass --data_dir=<an mltf dataset> "
                     "or --csv=<labels.csv beside an images/ folder>")
        from mltf.data import sources, writer
        tmp = tempfile.TemporaryDirectory(prefix="mltf_bench_")
        data_dir = os.path.join(tmp.name, "ds")
        print(f"converting {FLAGS.csv} -> {data_dir} (not timed)")
        writer.write_dataset(sources.load("csv", sources.SourceOptions(csv=FLAGS.csv)),
                             data_dir, val_fraction=0.0, progress=False)
    print(f"tensorflow {tf.__version__}, {os.cpu_count()} cores, "
          f"image_size {FLAGS.image_size}, batch {FLAGS.batch_size}, "
          f"{FLAGS.batches} batches x {FLAGS.rounds} rounds")
    results = {"train": [], "raw": []}
    peaks = {"train": [], "raw": []}
    builders = {"train": train_dataset, "raw": raw_dataset}
    for r in range(FLAGS.rounds):
        # Alternate which goes first so drift on a shared machine cancels.
        order = ["raw", "train"] if r % 2 == 0 else ["train", "raw"]
        for name in order:
            ds = builders[name](data_dir, FLAGS.split, FLAGS.image_size, FLAGS.batch_size)
            ips, peak = measure(ds, FLAGS.batches, FLAGS.warmup, FLAGS.batch_size)
            results[name].append(ips)
            peaks[name].append(peak)
            print(f"  round {r + 1} {name:<5} {ips:8.1f} images/s  peak RSS {peak:7.0f} MB")
            del ds
    train = statistics.median(results["train"])
    raw = statistics.median(results["raw"])
    print(f"train pipeline (five-crop + flip): {train:8.1f} images/s (median), "
          f"peak RSS {max(peaks['train']):.0f} MB")
    print(f"raw limit (decode + resize):       {raw:8.1f} images/s (median), "
          f"peak RSS {max(peaks['raw']):.0f} MB")
    print(f"ratio train / raw: {train / raw:.3f}  (target >= 0.8)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    app.run(main)
