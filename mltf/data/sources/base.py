"""What a source module returns, how it declares its options, and the
options every source may read.

A source turns raw files into ``Item``s: one per image (or feature vector),
with its label indices. It does not read or validate image bytes; the writer
(``mltf.data.writer``) does that, in parallel, and skips what is corrupt.

A source declares its options as ``Options``, a frozen dataclass extending
``SharedOptions`` whose fields are made with ``option``: the field is what
``load`` reads, and make_tfrecords turns its declaration into a flag.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

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
      feature_encoding: how a feature source built its vectors from its
        columns, when not one number per column (the arff source's one-hot
        and dropped attributes). Written to dataset_info.json.
    """
    label_names: List[str]
    splits: Dict[str, List[Item]]
    kind: str = "image"
    feature_dim: Optional[int] = None
    dropped: Dict[str, int] = dataclasses.field(default_factory=dict)
    feature_encoding: Dict[str, object] = dataclasses.field(default_factory=dict)


ALL = "all"


# The flag types an option can have (absl's DEFINE_<kind>).
KINDS = ("string", "integer", "float", "bool", "list", "enum")


def option(kind: str, default, help: str, choices: Optional[Sequence[str]] = None):
    """Declares one field of a source's ``Options`` and the make_tfrecords flag
    of the same name.

    Args:
      kind: one of ``KINDS``.
      default: the field's and the flag's default; a ``list`` default is a
        tuple here (dataclass defaults must be immutable) and a list in the
        flag.
      help: the flag's help text, without the ``<source>:`` prefix that the
        tool adds.
      choices: the allowed values of an ``enum``.
    """
    if kind not in KINDS:
        raise ValueError(f"option kind must be one of {KINDS}, got {kind!r}")
    if (kind == "enum") != (choices is not None):
        raise ValueError("choices go with kind 'enum', and only with it")
    return dataclasses.field(default=default, metadata={
        "kind": kind, "help": help,
        "choices": tuple(choices) if choices is not None else None})


@dataclasses.dataclass(frozen=True)
class SharedOptions:
    """Options any source may read; each source's ``Options`` extends it.

    Args:
      data_dir: root folder of the raw dataset (the flag is declared here, once,
        since several sources read it).
      seed: the tool's ``--seed``, which also seeds the split and the write
        order, so it is a plain field and not a flag of its own.
    """
    data_dir: Optional[str] = option(
        "string", None,
        "Root folder of the raw dataset (coco, nuswide, mirflickr, voc).")
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One declared option, as make_tfrecords turns it into a flag.

    Args:
      name: the field and flag name.
      kind: one of ``KINDS``.
      default: the flag default (a list for ``list``).
      help: the full flag help.
      choices: the values of an ``enum``, else None.
    """
    name: str
    kind: str
    default: object
    help: str
    choices: Optional[Tuple[str, ...]] = None


def declared_options(options_cls, prefix: str = "",
                     base=None) -> List[OptionSpec]:
    """The options ``options_cls`` declares with ``option``, less those of
    the dataclass ``base``, in field order, their help prefixed with
    ``prefix``."""
    inherited = {f.name for f in dataclasses.fields(base)} if base else set()
    specs = []
    for field in dataclasses.fields(options_cls):
        if field.name in inherited or "kind" not in field.metadata:
            continue
        kind = field.metadata["kind"]
        default = field.default
        if kind == "list" and default is not None:
            default = list(default)
        specs.append(OptionSpec(field.name, kind, default,
                                prefix + field.metadata["help"],
                                field.metadata["choices"]))
    return specs


class SourceOptions:
    """Option values by name for any source, in one flat set: what
    make_tfrecords passes (one value per flag), and the older calling form
    ``sources.load("demo", SourceOptions(demo_num_train=96))``. ``load``
    checks the names and keeps the values the chosen source declares; the
    others keep their defaults.

    Args:
      **values: option names (declared by a source, or ``seed``) and values.
    """

    def __init__(self, **values):
        self.__dict__.update(values)

    def for_source(self, options_cls):
        """The ``options_cls`` instance holding the values it declares."""
        fields = {f.name for f in dataclasses.fields(options_cls)}
        return options_cls(**{k: v for k, v in vars(self).items() if k in fields})


def require_file(path: str, what: str) -> str:
    """Raises SourceError naming ``path`` when it is not an existing file."""
    if not path or not os.path.isfile(path):
        raise SourceError(f"{what} not found: {path}")
    return path


def require_dir(path: str, what: str) -> str:
    """Raises SourceError naming ``path`` when it is not an existing folder."""
    if not path or not os.path.isdir(path):
        raise SourceError(f"{what} not found: {path}")
    return path
