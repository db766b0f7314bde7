r"""``nuswide`` source: NUS-WIDE with its 81 concepts, official train/test split.

Expected layout under ``--data_dir`` (the official ground-truth and image-list
downloads, unpacked side by side)::

    <data_dir>/
      Concepts81.txt                      # 81 concept names, one per line
      ImageList/TrainImagelist.txt        # one relative image path per line,
      ImageList/TestImagelist.txt         #   e.g. actor\0001_2124494179.jpg
      Groundtruth/TrainTestLabels/Labels_<concept>_Train.txt
      Groundtruth/TrainTestLabels/Labels_<concept>_Test.txt
      Flickr/<folder>/<image>.jpg         # or --nuswide_image_dir

Each ``Labels_<concept>_<Train|Test>.txt`` holds one ``0`` or ``1`` per line,
line ``i`` for line ``i`` of the matching image list, so it must have exactly
as many lines as that list. The label names are the concepts in the order of
``Concepts81.txt``.

Splits: ``train`` and ``test``. ``image/id`` is the image list's relative
path with forward slashes (``actor/0001_2124494179.jpg``); images are read
from ``--nuswide_image_dir`` (default ``<data_dir>/Flickr``). Images with no
concept are dropped, as in the papers (150,000 train / 59,347 test images
remain), and counted in ``dropped`` as ``"<split>: no concept"``. Images the
list names but the folder lacks (NUS-WIDE downloads often miss some) are
skipped and listed by the writer.
"""

import dataclasses
import os
from typing import Dict, List, Optional

from mltf.data.sources.base import (Item, SharedOptions, SourceData,
                                    SourceError, option, require_dir,
                                    require_file)

# split name -> (image list file, label file suffix)
SPLITS = {"train": ("TrainImagelist.txt", "Train"),
          "test": ("TestImagelist.txt", "Test")}


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the nuswide source (it also reads ``data_dir``).

    Args:
      nuswide_image_dir: the image root, or None for ``<data_dir>/Flickr``.
    """
    nuswide_image_dir: Optional[str] = option(
        "string", None, "image root (default: <data_dir>/Flickr).")


def _lines(path: str) -> List[str]:
    """Stripped lines of ``path``, without trailing blank lines."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def read_concepts(path: str) -> List[str]:
    require_file(path, "NUS-WIDE concept list")
    names = [n for n in _lines(path) if n]
    if not names:
        raise SourceError(f"{path}: no concept names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise SourceError(f"{path}: concept {dup!r} is listed twice")
    return names


def read_image_list(path: str) -> List[str]:
    require_file(path, "NUS-WIDE image list")
    keys = []
    seen = set()
    for line_no, line in enumerate(_lines(path), start=1):
        key = line.replace("\\", "/").strip("/")
        if not key:
            raise SourceError(f"{path} line {line_no}: empty image path")
        if key in seen:
            raise SourceError(f"{path} line {line_no}: {key!r} is listed twice")
        seen.add(key)
        keys.append(key)
    if not keys:
        raise SourceError(f"{path}: no images listed")
    return keys


def read_label_file(path: str, num_images: int, list_path: str) -> List[int]:
    """Indices (line numbers from 0) of the images marked 1 in ``path``."""
    require_file(path, "NUS-WIDE label file")
    lines = _lines(path)
    if len(lines) != num_images:
        raise SourceError(f"{path} has {len(lines)} lines but {list_path} "
                          f"lists {num_images} images")
    positives = []
    for i, value in enumerate(lines):
        if value == "1":
            positives.append(i)
        elif value != "0":
            raise SourceError(f"{path} line {i + 1}: {value!r}; expected 0 or 1")
    return positives


def load(options: Options) -> SourceData:
    data_dir = require_dir(options.data_dir, "NUS-WIDE root (--data_dir)")
    concepts = read_concepts(os.path.join(data_dir, "Concepts81.txt"))
    label_dir = os.path.join(data_dir, "Groundtruth", "TrainTestLabels")
    image_dir = require_dir(
        options.nuswide_image_dir or os.path.join(data_dir, "Flickr"),
        "NUS-WIDE image folder (--nuswide_image_dir)")

    splits: Dict[str, List[Item]] = {}
    dropped: Dict[str, int] = {}
    for split, (list_name, suffix) in SPLITS.items():
        list_path = os.path.join(data_dir, "ImageList", list_name)
        keys = read_image_list(list_path)
        labels: List[List[int]] = [[] for _ in keys]
        for c, concept in enumerate(concepts):
            path = os.path.join(label_dir, f"Labels_{concept}_{suffix}.txt")
            for i in read_label_file(path, len(keys), list_path):
                labels[i].append(c)
        items = [Item(key=key, labels=lab,
                      path=os.path.join(image_dir, *key.split("/")))
                 for key, lab in zip(keys, labels) if lab]
        if len(items) < len(keys):
            dropped[f"{split}: no concept"] = len(keys) - len(items)
        splits[split] = items
    return SourceData(label_names=concepts, splits=splits, dropped=dropped)
