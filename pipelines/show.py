r"""Builds the input pipelines a gin config describes and shows what they give.

  python -m pipelines.show --config=configs/demo.gin
  python -m pipelines.show --config=configs/demo.gin --save_grid=/tmp/batch.png

Prints the element spec of the train and eval pipelines, the label
frequencies of a few training batches and the training pipeline's images/s;
``--save_grid`` writes the first augmented training batch as one PNG.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Gin config file(s).")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
flags.DEFINE_integer("batches", 20, "Training batches to time.")
flags.DEFINE_string("save_grid", None, "Write the first training batch here as a PNG grid.")


def grid(images, columns=8):
    """[B, H, W, 3] floats in [0, 255] -> one uint8 grid image."""
    import numpy as np
    images = np.clip(np.asarray(images), 0, 255).astype(np.uint8)
    b, h, w, c = images.shape
    rows = -(-b // columns)
    out = np.zeros((rows * (h + 2), columns * (w + 2), c), np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, columns)
        out[r * (h + 2):r * (h + 2) + h, q * (w + 2):q * (w + 2) + w] = im
    return out


def main(argv):
    del argv
    import gin
    import numpy as np
    import tensorflow as tf
    import mltf.backbones  # noqa: F401  (backbone names as preprocessing modes)
    from mltf.data import schema
    from pipelines import input_configs, make_dataset
    if not FLAGS.config:
        raise app.UsageError("--config is required")
    gin.parse_config_files_and_bindings(FLAGS.config, FLAGS.gin_bindings)
    train_cfg, eval_cfg = input_configs()
    info = schema.read_info(train_cfg.data_dir)
    for name, cfg in (("train", train_cfg), ("eval", eval_cfg)):
        ds = make_dataset(cfg, info=info)
        print(f"{name}: split {cfg.split!r}, batch {cfg.batch_size}, spec {ds.element_spec}")
    ds = make_dataset(train_cfg, info=info)
    it = iter(ds)
    x, y = next(it)
    if FLAGS.save_grid:
        images = x["images"] if isinstance(x, dict) else x
        if train_cfg.preprocessing != "none":
            print("note: the grid shows preprocessed values clipped to [0, 255]")
        tf.io.write_file(FLAGS.save_grid, tf.io.encode_png(grid(images)))
        print(f"wrote {FLAGS.save_grid}")
    counts = y.numpy().sum(axis=0)
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
        _, y = next(it)
        counts += y.numpy().sum(axis=0)
    rate = FLAGS.batches * train_cfg.batch_size / (time.perf_counter() - start)
    seen = (FLAGS.batches + 1) * train_cfg.batch_size
    print("label frequency in the training batches seen:")
    for label, c in zip(info.label_names, counts):
        print(f"  {label:<16} {c / seen:.3f}")
    print(f"training pipeline: {rate:.0f} images/s")
    np.set_printoptions()
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
