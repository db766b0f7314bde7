#!/usr/bin/env python
"""Converts a raw multi-label dataset to mltf TFRecords.

Thin wrapper; the code (and ``--help``) is in ``mltf.data.make_tfrecords``.
"""


from mltf.utils import startup

if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import

from mltf.data.make_tfrecords import run  # noqa: E402

if __name__ == "__main__":
    run()
