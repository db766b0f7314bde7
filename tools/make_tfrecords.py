#!/usr/bin/env python
"""Converts a raw multi-label dataset to mltf TFRecords.

Thin wrapper; the code (and ``--help``) is in ``mltf.data.make_tfrecords``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mltf.data.make_tfrecords import run  # noqa: E402

if __name__ == "__main__":
    run()
