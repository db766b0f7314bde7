"""``mirflickr`` source: MIRFLICKR-25k with its 24 annotated labels.

Expected layout under ``--data_dir`` (``mirflickr25k.zip`` and
``mirflickr25k_annotations_v080.zip`` unpacked side by side)::

    <data_dir>/
      mirflickr/im1.jpg ... im25000.jpg    # other files there are ignored
      mirflickr25k_annotations_v080/
        README.txt
        animals.txt  animals_r1.txt  baby.txt  baby_r1.txt  ...

Each ``<label>.txt`` lists the numbers ``N`` of the images ``im<N>.jpg``
showing that label, one integer per line. The labels are the ``.txt`` files
there that are not ``README.txt`` and do not end in ``_r1``, sorted by name
(24 in v080: animals, baby, bird, car, clouds, dog, female, flower, food,
indoor, lake, male, night, people, plant_life, portrait, river, sea, sky,
structures, sunset, transport, tree, water). The ``_r1`` ("relevant") files
list subsets of their label's images where the label is salient; they are
not used, since the plain file already holds every image of the label.

Every ``im<N>.jpg`` in ``mirflickr/`` is one example, ``image/id`` being its
file name. Images with none of the 24 labels are kept with an empty label
list (the common multi-label classification protocol, all 25,000 images;
the writer reports them as ``num_empty``). Cross-modal retrieval papers that
use 20,015 images also drop images without tags, which this source does not
read. There is no official split: the source returns one split ``all`` and
the converter makes a seeded one. An image number in a label file with no
matching image is an error naming the label file and the number.
"""

import os
import re
from typing import Dict, List

from mltf.data.sources.base import (ALL, Item, SharedOptions, SourceData,
                                    SourceError, require_dir)

IMAGE_FOLDER = "mirflickr"
ANNOTATION_FOLDER = "mirflickr25k_annotations_v080"
_IMAGE_NAME = re.compile(r"^im([1-9][0-9]*)\.jpg$")

# Only data_dir: no option of its own.
Options = SharedOptions


def label_files(annotation_dir: str) -> Dict[str, str]:
    """Label name -> its file, sorted by name."""
    out = {}
    for name in sorted(os.listdir(annotation_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".txt" or stem.lower() == "readme" or stem.endswith("_r1"):
            continue
        path = os.path.join(annotation_dir, name)
        if os.path.isfile(path):
            out[stem] = path
    if not out:
        raise SourceError(f"{annotation_dir}: no label files (<label>.txt)")
    return out


def read_numbers(path: str) -> List[int]:
    numbers = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                numbers.append(int(line))
            except ValueError:
                raise SourceError(f"{path} line {line_no}: {line!r} is not an "
                                  "image number") from None
    return numbers


def load(options: Options) -> SourceData:
    data_dir = require_dir(options.data_dir, "MIRFLICKR root (--data_dir)")
    image_dir = require_dir(os.path.join(data_dir, IMAGE_FOLDER),
                            "MIRFLICKR image folder")
    annotation_dir = require_dir(os.path.join(data_dir, ANNOTATION_FOLDER),
                                 "MIRFLICKR annotation folder")
    images = {}
    for name in os.listdir(image_dir):
        match = _IMAGE_NAME.match(name)
        if match:
            images[int(match.group(1))] = name
    if not images:
        raise SourceError(f"{image_dir}: no images named im<N>.jpg")

    files = label_files(annotation_dir)
    labels: Dict[int, List[int]] = {n: [] for n in images}
    for index, (label, path) in enumerate(files.items()):
        for number in read_numbers(path):
            if number not in labels:
                raise SourceError(f"{path}: image number {number} has no image "
                                  f"{IMAGE_FOLDER}/im{number}.jpg")
            labels[number].append(index)
    items = [Item(key=images[n], labels=sorted(set(labels[n])),
                  path=os.path.join(image_dir, images[n]))
             for n in sorted(images)]
    return SourceData(label_names=list(files), splits={ALL: items})
