#!/usr/bin/env python
r"""Runs a frozen backbone once over an image dataset and writes its pooled
features as a feature dataset (see ``mltf.backbones.feature_cache``).

Example (EfficientNet-Lite0 ImageNet features of the MIML scene photos):
  python tools/cache_features.py --data_dir=data/miml_scene_full \
      --output_dir=data/miml_scene_lite0 --backbone=efficientnet_lite0 \
      --image_size=224

Train on the result with the ``mlp`` backbone, e.g.
``configs/miml_scene_lite0_features.gin``.
"""

import sys

from mltf.utils import startup

if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Image dataset written by tools/make_tfrecords.py.")
flags.DEFINE_string("output_dir", None, "Folder for the feature dataset.")
flags.DEFINE_string("backbone", "efficientnet_lite0", "A registered image backbone.")
flags.DEFINE_string("weights", "imagenet", "'imagenet', a weights file, or 'none' (random).")
flags.DEFINE_integer("image_size", 224, "Images are resized to this side.")
flags.DEFINE_list("splits", None, "Splits to cache (default: all).")
flags.DEFINE_enum("pooling", "avg", ["avg", "max"], "Global pooling of the last feature map.")
flags.DEFINE_integer("batch_size", 32, "Images per forward pass.")
flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --output_dir.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["data_dir", "output_dir"])


def main(argv):
    del argv
    from mltf.backbones import WeightsUnavailableError
    from mltf.backbones.feature_cache import cache_features

    weights = None if FLAGS.weights.lower() == "none" else FLAGS.weights
    try:
        info = cache_features(
            FLAGS.data_dir, FLAGS.output_dir, backbone=FLAGS.backbone,
            weights=weights, image_size=FLAGS.image_size, splits=FLAGS.splits,
            pooling=FLAGS.pooling, batch_size=FLAGS.batch_size,
            overwrite=FLAGS.overwrite, progress=FLAGS.progress)
    except (FileNotFoundError, KeyError, ValueError,
            WeightsUnavailableError) as e:
        sys.exit(f"error: {e}")
    sizes = ", ".join(f"{name} {split.num_examples}"
                      for name, split in info.splits.items())
    print(f"wrote {info.feature_dim}-d {FLAGS.backbone} features to "
          f"{FLAGS.output_dir}: {sizes}")


if __name__ == "__main__":
    app.run(main)
