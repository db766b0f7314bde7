"""What a source module returns, and the options every source may read.

A source turns raw files into ``Item``s: one per image (or feature vector),
with its label indices. It does not read or validate image bytes; the writer
(``mltf.data.writer``) does that, in parallel, and skips what is corrupt.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np


class SourceError(ValueError):
    """Bad source input that stops a conversion: a missing annotation file, a
    label the vocabulary lacks, an empty result. The message names the file
    or label."""


@dataclasses.dataclass
class Item:
    """One example. Exactly one of ``path``, ``data``, ``array`` or
    ``features`` is set.

    Args:
      key: the image id or file name written as ``image/id``.
      labels: label indices into the dataset's ``label_names``.
      path: an image file to read.
      data: already-encoded image bytes (JPEG, PNG, BMP or GIF).
      array: a decoded uint8 image, HxWx3 or HxWx1, encoded as PNG on write.
      features: a float feature vector (feature datasets).
    """
    key: str
    labels: Sequence[int]
    path: Optional[str] = None
    data: Optional[bytes] = None
    array: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None


@dataclasses.dataclass
class SourceData:
    """A source's result.

    Args:
      label_names: label names in index order.
      splits: split name to its items. A source without an official split
        returns one split named ``ALL``; the converter then makes a seeded
        train/val(/test) split.
      kind: ``"image"`` or ``"features"``.
      feature_dim: length of the feature vectors (feature datasets).
      dropped: counts of examples the source left out on purpose, by reason,
        e.g. ``{"train: no annotation": 35}``. Written to dataset_info.json.
    """
    label_names: List[str]
    splits: Dict[str, List[Item]]
    kind: str = "image"
    feature_dim: Optional[int] = None
    dropped: Dict[str, int] = dataclasses.field(default_factory=dict)


ALL = "all"


@dataclasses.dataclass
class SourceOptions:
    """Every option a source can read; each source uses the few it needs.

    ``mltf.data.make_tfrecords`` (behind ``tools/make_tfrecords.py``) fills it
    from its flags of the same names.
    """
    # Root folder of the raw dataset (coco, nuswide, mirflickr, voc).
    data_dir: Optional[str] = None
    # csv source.
    csv: Optional[str] = None
    image_dir: Optional[str] = None
    vocabulary: Optional[str] = None  # file with one label name per line
    # arff source.
    arff_train: Optional[str] = None
    arff_test: Optional[str] = None
    num_labels: Optional[int] = None  # the last k attributes are labels
    # coco source.
    coco_year: str = "2014"
    coco_keep_empty: bool = False
    # voc source.
    voc_year: str = "2007"
    voc_splits: Sequence[str] = ("trainval", "test")
    voc_difficult: str = "negative"  # negative | positive | drop
    # nuswide source.
    nuswide_image_dir: Optional[str] = None
    # tfds source.
    tfds_name: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    tfds_splits: Optional[Sequence[str]] = None
    tfds_image_key: str = "image"
    tfds_label_key: str = "labels"
    # demo source.
    demo_num_train: int = 2000
    demo_num_val: int = 500
    demo_image_size: int = 64
    seed: int = 0


def require_file(path: str, what: str) -> str:
    """Raises SourceError naming ``path`` when it is not an existing file."""
    if not path or not os.path.isfile(path):
        raise SourceError(f"{what} not found: {path}")
    return path


def require_dir(path: str, what: str) -> str:
    if not path or not os.path.isdir(path):
        raise SourceError(f"{what} not found: {path}")
    return path
