"""``csv`` source: a label table beside a folder of images.

Two layouts, told apart by the header:

- ``filename,<label>,<label>,...`` with a 0/1 column per label (this is how
  ``../shared/data/miml-scene/labels.csv`` is written);
- ``filename,labels`` (second header ``labels``, ``label`` or ``tags``) with
  the label names of each image separated by spaces, ``;`` or ``|``.

``--vocabulary`` (one name per line) fixes the label order and makes any
other name an error; without it the 0/1 layout keeps the column order and the
names layout sorts the names it saw. Images are looked up in ``--image_dir``
(default ``<csv folder>/images`` when it exists, else the csv folder). There
is no official split: the converter makes a seeded one.
"""

import csv
import dataclasses
import os
import re
from typing import List, Optional

from mltf.data.sources.base import (ALL, Item, SharedOptions, SourceData,
                                    SourceError, option, require_file)



@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the csv source.

    Args:
      csv: the label table.
      image_dir: the image folder.
      vocabulary: a file of label names, one per line.
    """
    csv: Optional[str] = option(
        "string", None, "the label file (filename,<label>,... with 0/1, or "
        "filename,labels with names).")
    image_dir: Optional[str] = option(
        "string", None, "image folder (default: <csv folder>/images if it "
        "exists, else the csv folder).")
    vocabulary: Optional[str] = option(
        "string", None, "file with one label name per line; names outside it "
        "are an error.")


_NAME_HEADERS = {"labels", "label", "tags"}
_SEPARATORS = re.compile(r"[\s;|]+")


def read_vocabulary(path: str) -> List[str]:
    require_file(path, "vocabulary file")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise SourceError(f"{path}: label {dup!r} is listed twice")
    if not names:
        raise SourceError(f"{path}: the vocabulary is empty")
    return names


def _image_dir(csv_path: str, image_dir: Optional[str]) -> str:
    if image_dir:
        if not os.path.isdir(image_dir):
            raise SourceError(f"image folder not found: {image_dir}")
        return image_dir
    here = os.path.dirname(os.path.abspath(csv_path))
    images = os.path.join(here, "images")
    return images if os.path.isdir(images) else here


def load(options: Options) -> SourceData:
    path = require_file(options.csv, "label csv (--csv)")
    image_dir = _image_dir(path, options.image_dir)
    vocabulary = read_vocabulary(options.vocabulary) if options.vocabulary else None
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise SourceError(f"{path}: no data rows under the header")
    header = [h.strip() for h in rows[0]]
    names_layout = len(header) == 2 and header[1].lower() in _NAME_HEADERS

    items: List[Item] = []
    seen = set()
    if names_layout:
        per_row = []
        for line, row in enumerate(rows[1:], start=2):
            filename = row[0].strip()
            names = [n for n in _SEPARATORS.split(row[1].strip()) if n] if len(row) > 1 else []
            per_row.append((line, filename, names))
        if vocabulary is None:
            label_names = sorted({n for _, _, names in per_row for n in names})
        else:
            label_names = vocabulary
        index = {n: i for i, n in enumerate(label_names)}
        for line, filename, names in per_row:
            unknown = [n for n in names if n not in index]
            if unknown:
                raise SourceError(f"{path} line {line}: label {unknown[0]!r} is "
                                  f"not in the vocabulary ({options.vocabulary})")
            items.append(_item(path, line, filename, [index[n] for n in names],
                               image_dir, seen))
    else:
        columns = header[1:]
        if not columns:
            raise SourceError(f"{path}: the header has no label columns")
        if len(set(columns)) != len(columns):
            raise SourceError(f"{path}: a label column appears twice in the header")
        if vocabulary is None:
            label_names = columns
        else:
            unknown = [c for c in columns if c not in vocabulary]
            if unknown:
                raise SourceError(f"{path}: label column {unknown[0]!r} is not in "
                                  f"the vocabulary ({options.vocabulary})")
            label_names = vocabulary
        index = [label_names.index(c) for c in columns]
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise SourceError(f"{path} line {line}: {len(row)} fields, the "
                                  f"header has {len(header)}")
            labels = []
            for column, value, target in zip(columns, row[1:], index):
                value = value.strip()
                if value == "1":
                    labels.append(target)
                elif value != "0":
                    raise SourceError(f"{path} line {line}: column {column!r} "
                                      f"has {value!r}; expected 0 or 1")
            items.append(_item(path, line, row[0].strip(), labels, image_dir, seen))
    return SourceData(label_names=list(label_names), splits={ALL: items})


def _item(path, line, filename, labels, image_dir, seen) -> Item:
    if not filename:
        raise SourceError(f"{path} line {line}: empty file name")
    if filename in seen:
        raise SourceError(f"{path} line {line}: {filename!r} is listed twice")
    seen.add(filename)
    return Item(key=filename, labels=labels,
                path=os.path.join(image_dir, filename))
