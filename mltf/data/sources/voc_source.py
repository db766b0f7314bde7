"""``voc`` source: PASCAL VOC 2007/2012 image-level labels of the 20 classes.

``--data_dir`` is either the ``VOCdevkit`` folder holding ``VOC<year>``
(``<year>`` is ``--voc_year``) or the ``VOC<year>`` folder itself::

    VOC<year>/
      ImageSets/Main/<class>_<split>.txt   # e.g. aeroplane_trainval.txt
      JPEGImages/<image_id>.jpg

Each ``<class>_<split>.txt`` line is ``<image_id> <flag>``: ``1`` the class
is present, ``-1`` absent, ``0`` present only as "difficult" objects. All 20
files of a split must list the same images. The labels are the 20 classes in
the standard order: aeroplane, bicycle, bird, boat, bottle, bus, car, cat,
chair, cow, diningtable, dog, horse, motorbike, person, pottedplant, sheep,
sofa, train, tvmonitor.

Splits: each of ``--voc_splits`` (default ``trainval`` and ``test``; VOC 2007
test is the separate test download unpacked into the same folder; VOC 2012
has no public test labels, so use ``train,val`` or ``trainval`` there) is
written as a split of that name. ``image/id`` is the image id.

``--voc_difficult`` says how a ``0`` counts: ``negative`` (default, the usual
VOC classification protocol) as absent, ``positive`` as present, ``drop``
leaves out every image with a ``0`` for any class, counted in ``dropped`` as
``"<split>: difficult label"``. Images left with no label (in VOC, those
whose objects are all difficult) are kept; the writer reports them as
``num_empty``.
"""

import dataclasses
import os
from typing import Dict, List, Sequence

from mltf.data.sources.base import (Item, SharedOptions, SourceData,
                                    SourceError, option, require_dir,
                                    require_file)

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
           "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
           "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
DIFFICULT_MODES = ("negative", "positive", "drop")


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the voc source (it also reads ``data_dir``).

    Args:
      voc_year: ``"2007"`` or ``"2012"``.
      voc_splits: the ImageSets/Main splits to convert (a comma-separated
        string is split).
      voc_difficult: one of ``DIFFICULT_MODES``.
    """
    voc_year: str = option("string", "2007", "2007 or 2012.")
    voc_splits: Sequence[str] = option("list", ("trainval", "test"),
                                       "ImageSets/Main splits to convert.")
    voc_difficult: str = option("enum", "negative",
                                "how a label marked difficult (0) counts.",
                                choices=DIFFICULT_MODES)


def voc_root(data_dir: str, year: str) -> str:
    """The ``VOC<year>`` folder, given it or the ``VOCdevkit`` above it."""
    require_dir(data_dir, "PASCAL VOC folder (--data_dir)")
    inner = os.path.join(data_dir, f"VOC{year}")
    if os.path.isdir(os.path.join(inner, "ImageSets")):
        return inner
    if os.path.isdir(os.path.join(data_dir, "ImageSets")):
        return data_dir
    raise SourceError(f"{data_dir} is neither a VOCdevkit folder holding "
                      f"VOC{year}/ImageSets nor a VOC{year} folder holding "
                      "ImageSets")


def read_class_file(path: str) -> Dict[str, int]:
    """Image id -> flag (1, -1 or 0), in file order."""
    require_file(path, "VOC class file")
    flags: Dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("1", "-1", "0"):
                raise SourceError(f"{path} line {line_no}: {line.strip()!r}; "
                                  "expected '<image_id> <1|-1|0>'")
            if fields[0] in flags:
                raise SourceError(f"{path} line {line_no}: image {fields[0]} "
                                  "is listed twice")
            flags[fields[0]] = int(fields[1])
    if not flags:
        raise SourceError(f"{path}: no images listed")
    return flags


def load(options: Options) -> SourceData:
    year = str(options.voc_year)
    root = voc_root(options.data_dir, year)
    mode = options.voc_difficult
    if mode not in DIFFICULT_MODES:
        raise SourceError(f"--voc_difficult must be one of "
                          f"{', '.join(DIFFICULT_MODES)}; got {mode!r}")
    requested = options.voc_splits
    if isinstance(requested, str):
        requested = requested.split(",")
    split_names = [s.strip() for s in requested if s.strip()]
    if not split_names:
        raise SourceError("--voc_splits is empty")
    if len(set(split_names)) != len(split_names):
        raise SourceError(f"--voc_splits lists a split twice: {split_names}")
    image_dir = require_dir(os.path.join(root, "JPEGImages"),
                            "VOC image folder")
    main = os.path.join(root, "ImageSets", "Main")

    splits: Dict[str, List[Item]] = {}
    dropped: Dict[str, int] = {}
    for split in split_names:
        ids: List[str] = []
        labels: Dict[str, List[int]] = {}
        difficult = set()
        first_path = None
        for c, name in enumerate(CLASSES):
            path = os.path.join(main, f"{name}_{split}.txt")
            flags = read_class_file(path)
            if first_path is None:
                first_path = path
                ids = list(flags)
                labels = {i: [] for i in ids}
            elif flags.keys() != labels.keys():
                extra = sorted(set(flags) - set(labels))
                missing = sorted(set(labels) - set(flags))
                what = (f"lists image {extra[0]} that {first_path} lacks" if extra
                        else f"lacks image {missing[0]} that {first_path} lists")
                raise SourceError(f"{path} {what}")
            for image_id, flag in flags.items():
                if flag == 1 or (flag == 0 and mode == "positive"):
                    labels[image_id].append(c)
                elif flag == 0 and mode == "drop":
                    difficult.add(image_id)
        items = [Item(key=i, labels=labels[i],
                      path=os.path.join(image_dir, f"{i}.jpg"))
                 for i in ids if i not in difficult]
        if difficult:
            dropped[f"{split}: difficult label"] = len(difficult)
        splits[split] = items
    return SourceData(label_names=list(CLASSES), splits=splits,
                      dropped=dropped)
