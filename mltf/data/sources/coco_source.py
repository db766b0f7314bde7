"""``coco`` source: MS-COCO 2014 or 2017 instance annotations as image labels.

Expected layout under ``--data_dir`` (``{year}`` is ``--coco_year``, 2014 or
2017), as the official zips unpack::

    <data_dir>/
      annotations/instances_train{year}.json
      annotations/instances_val{year}.json
      train{year}/<file_name>      # e.g. COCO_train2014_000000000009.jpg
      val{year}/<file_name>

``--coco_splits`` says which splits to convert: by default those whose
annotation file is there (at least one must be), so a subset with only
train2017 (such as ``../shared/data/coco128``) converts; an explicit list
(``--coco_splits=train,val``) makes a missing file an error naming it. Each
file is read with ``pycocotools.coco.COCO``. The label names are the
categories sorted by category id (the usual COCO order, so ids 1..90 with
gaps map to indices 0..79), named as in the json; the converted files must
list the same categories. An image's labels are the categories of all its
annotations (crowd annotations included).

Splits: ``train`` and ``val`` (the test sets have no annotations). When only
one is converted, it is returned as the one split ``all``, and the converter
makes its seeded train/val split (``--val_fraction``), as for the sources
without an official split. ``image/id`` is the image's ``file_name``. Images
with no annotation at all are dropped, as in the multi-label papers (2014:
82,081 train / 40,137 val images remain), and counted in ``dropped`` as
``"<split>: no annotation"``; ``--coco_keep_empty`` keeps them with an empty
label list instead.
"""

import contextlib
import dataclasses
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from mltf.data.sources.base import (ALL, Item, SharedOptions, SourceData,
                                    SourceError, option, require_dir,
                                    require_file)

SPLITS = ("train", "val")
YEARS = ("2014", "2017")


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the coco source (it also reads ``data_dir``).

    Args:
      coco_year: ``"2014"`` or ``"2017"``.
      coco_keep_empty: keep images with no annotation.
      coco_splits: the splits to convert, or None for those present.
    """
    # A string flag, not an enum, so that a wrong year gets this source's
    # own error message.
    coco_year: str = option("string", "2014", "2014 or 2017.")
    coco_keep_empty: bool = option(
        "bool", False, "keep images with no annotation (the papers drop them).")
    coco_splits: Optional[Sequence[str]] = option(
        "list", None, "splits to convert, of train,val (default: those whose "
        "annotation file is there).")


def annotation_path(data_dir: str, split: str, year: str) -> str:
    return os.path.join(data_dir, "annotations", f"instances_{split}{year}.json")


def _annotation_paths(data_dir: str, year: str,
                      wanted: Optional[Sequence[str]]) -> Dict[str, str]:
    """Split to annotation file, for the splits asked for or else present."""
    if wanted:
        unknown = [s for s in wanted if s not in SPLITS]
        if unknown:
            raise SourceError(f"--coco_splits: {unknown[0]!r} is not one of "
                              f"{', '.join(SPLITS)}")
        return {s: require_file(annotation_path(data_dir, s, year),
                                f"COCO {s} annotation file (--coco_splits)")
                for s in dict.fromkeys(wanted)}
    paths = {s: annotation_path(data_dir, s, year) for s in SPLITS}
    present = {s: p for s, p in paths.items() if os.path.isfile(p)}
    if not present:
        raise SourceError("no COCO annotation file found: looked for "
                          + " and ".join(paths.values()))
    return present


def _read_coco(path: str):
    from pycocotools.coco import COCO  # imported only for this source
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: not a valid json file ({e})") from None
    except (AssertionError, KeyError, TypeError) as e:
        raise SourceError(f"{path}: not a COCO instances annotation file "
                          f"({type(e).__name__}: {e})") from None


def _categories(coco, path: str) -> List[Tuple[int, str]]:
    cats = sorted((int(c["id"]), str(c["name"])) for c in coco.cats.values())
    if not cats:
        raise SourceError(f"{path}: no categories")
    return cats


def load(options: Options) -> SourceData:
    data_dir = require_dir(options.data_dir, "COCO root (--data_dir)")
    year = str(options.coco_year)
    if year not in YEARS:
        raise SourceError(f"--coco_year must be one of {', '.join(YEARS)}; "
                          f"got {year!r}")
    paths = _annotation_paths(data_dir, year, options.coco_splits)
    # Check every folder before the slow json parsing.
    image_dirs = {s: require_dir(os.path.join(data_dir, f"{s}{year}"),
                                 f"COCO {s} image folder")
                  for s in paths}

    label_names = None
    reference = None
    splits: Dict[str, List[Item]] = {}
    dropped: Dict[str, int] = {}
    for split, path in paths.items():
        coco = _read_coco(path)
        cats = _categories(coco, path)
        if reference is None:
            reference, reference_path = cats, path
            label_names = [name for _, name in cats]
        elif cats != reference:
            raise SourceError(f"{path} and {reference_path} list different "
                              "categories")
        index = {cat_id: i for i, (cat_id, _) in enumerate(cats)}
        items: List[Item] = []
        seen = set()
        num_empty = 0
        for image_id in sorted(coco.imgs):
            image = coco.imgs[image_id]
            file_name = image.get("file_name")
            if not file_name:
                raise SourceError(f"{path}: image {image_id} has no file_name")
            if file_name in seen:
                raise SourceError(f"{path}: file_name {file_name!r} is listed "
                                  "twice")
            seen.add(file_name)
            labels = set()
            for ann in coco.imgToAnns.get(image_id, ()):
                cat_id = ann.get("category_id")
                if cat_id not in index:
                    raise SourceError(f"{path}: annotation {ann.get('id')} of "
                                      f"image {image_id} has category_id "
                                      f"{cat_id!r}, not in the categories")
                labels.add(index[cat_id])
            if not labels:
                num_empty += 1
                if not options.coco_keep_empty:
                    continue
            items.append(Item(key=file_name, labels=sorted(labels),
                              path=os.path.join(image_dirs[split], file_name)))
        if num_empty and not options.coco_keep_empty:
            dropped[f"{split}: no annotation"] = num_empty
        splits[split] = items
        del coco
    if len(splits) == 1:
        splits = {ALL: next(iter(splits.values()))}
    return SourceData(label_names=label_names, splits=splits, dropped=dropped)
