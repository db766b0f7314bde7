"""The one TFRecord format every mltf dataset is written in.

A dataset is a folder holding sharded TFRecord files and a
``dataset_info.json`` beside them::

    <output_dir>/
      dataset_info.json
      train-00000-of-00004.tfrecord ... train-00003-of-00004.tfrecord
      train.labels.npy              # multi-hot [num_examples, num_labels], uint8
      val-00000-of-00001.tfrecord
      val.labels.npy
      skipped.txt                   # only when inputs were skipped

Each record is a ``tf.train.Example`` with these features:

=================  ==========  ===================================================
key                type        meaning
=================  ==========  ===================================================
``image/id``       bytes       image id or file name (unique within a split)
``labels``         int64 list  indices into ``label_names`` (sorted, no repeats;
                               empty for an image with no label)
``image/encoded``  bytes       encoded image (JPEG, PNG, BMP or GIF), image
                               datasets only
``image/height``   int64       height of the encoded image, image datasets only
``image/width``    int64       width of the encoded image, image datasets only
``features``       float list  feature vector of length ``feature_dim``,
                               feature datasets only (``kind == "features"``)
=================  ==========  ===================================================

``dataset_info.json`` keys (see ``DatasetInfo``): ``format_version``,
``kind`` (``"image"`` or ``"features"``), ``feature_dim`` (features only),
``label_names`` (in index order), ``num_labels``, ``splits`` (per split:
``num_examples``, ``shards`` (file names), ``label_counts`` (per label, in
label order), ``label_cardinality`` (mean labels per example), ``num_empty``
(examples with no label), ``num_skipped`` and ``labels_file``), ``source``,
``arguments`` (the arguments the converter was run with), ``dropped``
(examples the source left out on purpose, by reason, e.g. COCO images with no
annotation), ``feature_encoding`` (features only, when present: how the
vectors were built from the source's columns, e.g. the arff source's
``one_hot`` and ``dropped_string`` attributes), ``skipped_report``
(``skipped.txt`` when inputs were unreadable) and ``created``.

``<split>.labels.npy`` holds the same labels as the records, in record-write
order; the input pipeline uses it to draw the label sets of other images
(mismatched pairs) without reading any image bytes.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from mltf.utils import atomic

FORMAT_VERSION = 1
INFO_FILE = "dataset_info.json"
SKIPPED_FILE = "skipped.txt"

KEY_ID = "image/id"
KEY_LABELS = "labels"
KEY_IMAGE = "image/encoded"
KEY_HEIGHT = "image/height"
KEY_WIDTH = "image/width"
KEY_FEATURES = "features"

KIND_IMAGE = "image"
KIND_FEATURES = "features"


def shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def labels_file_name(split: str) -> str:
    return f"{split}.labels.npy"


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _as_bytes(s) -> bytes:
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


def encode_image_example(image_id: str, labels: Sequence[int],
                         encoded: bytes, height: int, width: int) -> bytes:
    """Serializes one image record. ``labels`` are label indices."""
    feature = {
        KEY_ID: _bytes([_as_bytes(image_id)]),
        KEY_LABELS: _ints(sorted(set(int(i) for i in labels))),
        KEY_IMAGE: _bytes([encoded]),
        KEY_HEIGHT: _ints([int(height)]),
        KEY_WIDTH: _ints([int(width)]),
    }
    return tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString()


def encode_feature_example(image_id: str, labels: Sequence[int],
                           features: Sequence[float]) -> bytes:
    """Serializes one feature-vector record. ``labels`` are label indices."""
    feature = {
        KEY_ID: _bytes([_as_bytes(image_id)]),
        KEY_LABELS: _ints(sorted(set(int(i) for i in labels))),
        KEY_FEATURES: _floats(np.asarray(features, np.float32).ravel()),
    }
    return tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec(kind: str, feature_dim: Optional[int] = None) -> Dict:
    """The ``tf.io.parse_single_example`` spec for records of ``kind``."""
    spec = {
        KEY_ID: tf.io.FixedLenFeature([], tf.string),
        KEY_LABELS: tf.io.VarLenFeature(tf.int64),
    }
    if kind == KIND_IMAGE:
        spec[KEY_IMAGE] = tf.io.FixedLenFeature([], tf.string)
        spec[KEY_HEIGHT] = tf.io.FixedLenFeature([], tf.int64)
        spec[KEY_WIDTH] = tf.io.FixedLenFeature([], tf.int64)
    elif kind == KIND_FEATURES:
        if not feature_dim:
            raise ValueError("feature records need feature_dim")
        spec[KEY_FEATURES] = tf.io.FixedLenFeature([feature_dim], tf.float32)
    else:
        raise ValueError(f"unknown dataset kind {kind!r}; expected "
                         f"{KIND_IMAGE!r} or {KIND_FEATURES!r}")
    return spec


def multi_hot(label_indices: tf.Tensor, num_labels: int) -> tf.Tensor:
    """Label indices (1-D int tensor) to a float32 multi-hot vector."""
    one_hot = tf.one_hot(tf.cast(label_indices, tf.int32), num_labels,
                         dtype=tf.float32)
    # Indices are unique, so the sum is 0/1; it is also 0 for no label.
    return tf.minimum(tf.reduce_sum(one_hot, axis=0), 1.0)


def multi_hot_np(labels: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    out = np.zeros((len(labels), num_labels), np.uint8)
    for row, idx in enumerate(labels):
        if len(idx):
            out[row, list(idx)] = 1
    return out


@dataclasses.dataclass
class SplitInfo:
    num_examples: int
    shards: List[str]
    label_counts: List[int]
    label_cardinality: float
    num_empty: int = 0
    num_skipped: int = 0
    labels_file: Optional[str] = None


@dataclasses.dataclass
class DatasetInfo:
    """Contents of ``dataset_info.json`` (see the module docstring)."""
    kind: str
    label_names: List[str]
    splits: Dict[str, SplitInfo]
    source: str = ""
    arguments: Dict = dataclasses.field(default_factory=dict)
    dropped: Dict[str, int] = dataclasses.field(default_factory=dict)
    feature_encoding: Dict = dataclasses.field(default_factory=dict)
    feature_dim: Optional[int] = None
    skipped_report: Optional[str] = None
    created: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["num_labels"] = self.num_labels
        # Left out when empty, so that the files of other datasets stay as
        # earlier versions wrote and read them.
        if not self.feature_encoding:
            del d["feature_encoding"]
        return json.dumps(d, indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: Dict) -> "DatasetInfo":
        d = dict(d)
        d.pop("num_labels", None)
        d["splits"] = {k: SplitInfo(**v) for k, v in d["splits"].items()}
        return cls(**d)

    def split(self, name: str) -> SplitInfo:
        if name not in self.splits:
            raise KeyError(f"split {name!r} not in this dataset; it has "
                           f"{sorted(self.splits)}")
        return self.splits[name]


def read_info(data_dir: str) -> DatasetInfo:
    """Reads ``dataset_info.json`` from ``data_dir`` with a clear error."""
    path = os.path.join(data_dir, INFO_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {data_dir!r} is not an mltf dataset folder. "
            "Create one with tools/make_tfrecords.py.")
    with tf.io.gfile.GFile(path) as f:
        d = json.load(f)
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {d.get('format_version')} "
                         f"is not supported (expected {FORMAT_VERSION})")
    return DatasetInfo.from_dict(d)


def read_labels(data_dir: str, split: str):
    """The multi-hot labels of ``split`` [N, C] (uint8), from its
    ``<split>.labels.npy`` sidecar, with a clear error when it is missing."""
    import numpy as np
    info = read_info(data_dir)
    name = info.split(split).labels_file or labels_file_name(split)
    path = os.path.join(data_dir, name)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: the labels of split {split!r}; "
                                "rewrite the dataset with tools/make_tfrecords.py")
    with tf.io.gfile.GFile(path, "rb") as f:
        return np.load(f)


def write_json_atomic(path: str, text: str) -> None:
    atomic.atomic_text(path, text)
