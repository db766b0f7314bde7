"""``arff`` source: multi-label feature vectors in MULAN / MEKA ARFF files.

``--arff_train`` (and optionally ``--arff_test``) name ARFF files such as
``../shared/data/mulan/scene/scene-train.arff``. Each data row becomes one
feature record (``kind == "features"``); the label attributes give the label
indices. liac-arff (``import arff``) reads the files, dense
(``v1,v2,...``) or sparse (``{index value, ...}``) rows; in a sparse row an
omitted numeric value is 0 and an omitted nominal value is the first value
the attribute declares (0 for ``{0,1}``), as in Weka.

Which attributes are labels, the first rule that applies:

- ``--num_labels=k``: the last ``k`` attributes;
- a MEKA relation name with ``-C k`` (e.g. ``@relation 'scene: -C -6'``):
  as in MEKA, ``-C -k`` means the last ``k`` attributes and ``-C k`` (k > 0)
  the first ``k``;
- a MULAN label file beside the train file, ``<stem>.xml`` where ``<stem>``
  starts the ARFF's name (``Corel5k.xml`` for ``Corel5k-train-sparse.arff``):
  the attributes its ``<label name="..."/>`` elements name;
- else the trailing run of attributes whose type is the nominal ``{0,1}``.

Labels must be numeric or nominal ``{0,1}`` with values 0/1. The features are
the other attributes, in file order: numeric ones and nominal ones whose
values are among ``{0,1}`` (how MULAN's text sets declare binary features)
as numbers; any other nominal attribute one-hot, one column per declared
value in declared order; string attributes (ids, as in genbase) are dropped.
``feature_encoding`` in ``dataset_info.json`` says which were one-hot
(``{"one_hot": {name: {"column": first column, "values": [...]}}}``) and
which dropped (``"dropped_string": [names]``).

A missing value (``?``) or a non-finite number in a feature, a label value
other than 0/1, a row that does not fit the header and train and test files
whose attribute lists differ are errors naming the file and line.

Record keys are ``train-000000``, ``test-000000``, ... (row index in its
file). With only a train file the converter makes a seeded train/val split.
"""

import contextlib
import dataclasses
import os
import re
import xml.etree.ElementTree as ElementTree
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from mltf.data.sources.base import (ALL, Item, SharedOptions, SourceData,
                                    SourceError, option, require_file)


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the arff source.

    Args:
      arff_train: the training ARFF file.
      arff_test: the test ARFF file, or None.
      num_labels: how many trailing attributes are labels, or None to infer.
    """
    arff_train: Optional[str] = option("string", None, "training ARFF file.")
    arff_test: Optional[str] = option("string", None, "test ARFF file (optional).")
    num_labels: Optional[int] = option(
        "integer", None, "the last k attributes are the labels (default: MEKA's -C, "
        "else the MULAN .xml beside the file, else the trailing {0,1} attributes).")


_MEKA_C = re.compile(r"(?:^|\s)-C\s+(-?\d+)(?=\s|$|['\"])")

# What each liac-arff exception means; its own message is not used, since it
# embeds the whole offending row (bibtex's run to thousands of characters).
_LIAC_REASONS = {
    "BadRelationFormat": "bad @relation line",
    "BadAttributeFormat": "bad @attribute line",
    "BadAttributeType": "unsupported attribute type (numeric, real, integer, string "
                        "or {nominal values}; not date)",
    "BadAttributeName": "attribute declared twice",
    "BadDataFormat": "the row does not fit the header (wrong number of values, or a "
                     "sparse index past the last attribute)",
    "BadNominalValue": "a value its nominal attribute does not declare",
    "BadNominalFormatting": "a nominal value with spaces is not quoted",
    "BadNumericalValue": "a value of a numeric attribute is not a number",
    "BadStringValue": "a string value with spaces is not quoted",
    "BadLayout": "not ARFF here (@relation, @attribute lines, @data, then rows; "
                 "quotes and braces must close)",
}


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _cut_values(values: List[str], shown: int = 5) -> str:
    more = f",... ({len(values)} values)" if len(values) > shown else ""
    return "{" + ",".join(values[:shown]) + more + "}"


@dataclasses.dataclass
class Attribute:
    """One ``@attribute`` declaration.

    Args:
      name: the attribute's name.
      kind: ``"numeric"``, ``"nominal"`` or ``"string"``.
      values: the nominal values in declared order, else None.
      line: where it is declared.
    """
    name: str
    kind: str
    values: Optional[List[str]]
    line: int

    @property
    def binary(self) -> bool:
        return self.kind == "nominal" and set(self.values) <= {"0", "1"}

    def signature(self) -> Tuple:
        return self.name, self.kind, tuple(self.values or ())

    def describe(self) -> str:
        kind = _cut_values(self.values) if self.kind == "nominal" else self.kind
        return f"{self.name!r} {kind}"


class _Lines:
    """An ARFF file's lines as liac-arff reads them, counted: liac-arff decodes
    rows lazily and tells neither which line a row (or an error in the data)
    came from nor where an attribute was declared."""

    def __init__(self, f):
        self._f = f
        self.number = 0
        self.text = ""
        self.attribute_lines: List[int] = []
        self.data_seen = False
        self.finished = False

    def __iter__(self):
        for self.number, self.text in enumerate(self._f, start=1):
            head = self.text.lstrip(" \r\n")[:10].upper()
            if head.startswith("@ATTRIBUTE"):
                self.attribute_lines.append(self.number)
            elif head.startswith("@DATA"):
                self.data_seen = True
            yield self.text
        self.finished = True


def _liac_error(path: str, lines: _Lines, e: Exception) -> SourceError:
    if lines.finished and not lines.data_seen:
        return SourceError(f"{path}: no @data section")
    reason = _LIAC_REASONS.get(type(e).__name__, type(e).__name__)
    return SourceError(f"{path} line {lines.number}: {reason}: "
                       f"{_cut(lines.text.strip())}")


@contextlib.contextmanager
def _open_arff(path: str):
    """Yields ``(relation, attributes, rows)``; ``rows`` yields
    ``(line, values)`` with liac-arff's values: a number, a string, None for
    ``?`` and, for a nominal value, its index among the declared values
    (``encode_nominal``: far faster to turn into numbers than strings)."""
    import arff  # liac-arff, imported only for this source
    require_file(path, "ARFF file")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        lines = _Lines(f)
        try:
            decoded = arff.load(lines, encode_nominal=True, return_type=arff.DENSE_GEN)
        except arff.ArffException as e:
            raise _liac_error(path, lines, e) from None
        attributes = []
        for (name, kind), line in zip(decoded["attributes"], lines.attribute_lines):
            if isinstance(kind, list):
                attributes.append(Attribute(name, "nominal", list(kind), line))
            else:
                attributes.append(Attribute(name, "string" if kind == "STRING"
                                            else "numeric", None, line))

        def rows() -> Iterator[Tuple[int, list]]:
            try:
                for values in decoded["data"]:
                    yield lines.number, values
            except arff.ArffException as e:
                raise _liac_error(path, lines, e) from None

        yield decoded["relation"], attributes, rows()


def _xml_labels(arff_path: str) -> Optional[Tuple[str, List[str]]]:
    """``(xml path, label names)`` from the MULAN label file beside
    ``arff_path`` (the longest ``<stem>.xml`` whose stem starts its name)."""
    folder = os.path.dirname(os.path.abspath(arff_path))
    name = os.path.basename(arff_path)
    stems = [f[:-4] for f in os.listdir(folder)
             if f.lower().endswith(".xml") and name.startswith(f[:-4])]
    if not stems:
        return None
    path = os.path.join(folder, max(stems, key=len) + ".xml")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise SourceError(f"{path}: not a MULAN label file ({e})") from None
    # MULAN may nest labels (hierarchies) and puts them in its namespace.
    names = [el.get("name") for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "label"]
    if not names or None in names:
        raise SourceError(f"{path}: expected <label name=\"...\"/> elements")
    return path, names


def _label_positions(path: str, relation: str, attributes: List[Attribute],
                     num_labels: Optional[int]) -> List[int]:
    """Indices of the label attributes (see the module docstring)."""
    n = len(attributes)
    if num_labels is not None:
        k = int(num_labels)
        if not 0 < k < n:
            raise SourceError(f"{path}: --num_labels={k} must be between 1 and "
                              f"{n - 1} (the file has {n} attributes)")
        return list(range(n - k, n))
    m = _MEKA_C.search(relation)
    if m:
        c = int(m.group(1))
        if c == 0 or abs(c) >= n:
            raise SourceError(f"{path}: relation {relation!r} has -C {c}, but the "
                              f"file has {n} attributes")
        return list(range(c)) if c > 0 else list(range(n + c, n))
    xml = _xml_labels(path)
    if xml is not None:
        xml_path, names = xml
        known = {a.name for a in attributes}
        missing = [name for name in names if name not in known]
        if missing:
            raise SourceError(f"{xml_path}: labels {_cut_values(missing)} are not "
                              f"attributes of {path}")
        wanted = set(names)
        return [i for i, a in enumerate(attributes) if a.name in wanted]
    k = 0
    while k < n and attributes[n - 1 - k].binary:
        k += 1
    if k == 0:
        raise SourceError(
            f"{path}: cannot tell which attributes are labels: the last attribute is "
            "not nominal {0,1}, the relation name has no MEKA -C option and no MULAN "
            ".xml is beside the file; pass --num_labels")
    if k == n:
        raise SourceError(f"{path}: every attribute is {{0,1}}; pass --num_labels "
                          "(or put the dataset's MULAN .xml beside the file)")
    return list(range(n - k, n))


@dataclasses.dataclass
class _Layout:
    """Where each attribute goes: the label positions, the columns of the
    features read as numbers, the one-hot attributes (position, first
    column) and what ``feature_encoding`` says. A nominal {0,1} attribute's
    value is its index unless it declares 1 first ({1,0}): then the labels
    and columns listed in ``*_flipped`` hold 1 - index."""
    labels: List[int]
    number_positions: List[int] = dataclasses.field(default_factory=list)
    number_columns: List[int] = dataclasses.field(default_factory=list)
    one_hot: List[Tuple[int, int]] = dataclasses.field(default_factory=list)
    feature_dim: int = 0
    encoding: Dict[str, object] = dataclasses.field(default_factory=dict)
    labels_flipped: List[int] = dataclasses.field(default_factory=list)
    columns_flipped: List[int] = dataclasses.field(default_factory=list)


def _flipped(a: Attribute) -> bool:
    return a.kind == "nominal" and a.values[0] == "1"


def _layout(path: str, attributes: List[Attribute], labels: List[int]) -> _Layout:
    for p in labels:
        a = attributes[p]
        if a.kind != "numeric" and not a.binary:
            raise SourceError(f"{path} line {a.line}: label attribute {a.describe()} "
                              "must be nominal {0,1} or numeric 0/1")
    label_set = set(labels)
    layout = _Layout(labels, labels_flipped=[
        j for j, p in enumerate(labels) if _flipped(attributes[p])])
    one_hot, dropped = {}, []
    for p, a in enumerate(attributes):
        if p in label_set:
            continue
        if a.kind == "string":
            dropped.append(a.name)
        elif a.kind == "numeric" or a.binary:
            layout.number_positions.append(p)
            layout.number_columns.append(layout.feature_dim)
            if _flipped(a):
                layout.columns_flipped.append(layout.feature_dim)
            layout.feature_dim += 1
        else:
            layout.one_hot.append((p, layout.feature_dim))
            one_hot[a.name] = {"column": layout.feature_dim, "values": list(a.values)}
            layout.feature_dim += len(a.values)
    if one_hot:
        layout.encoding["one_hot"] = one_hot
    if dropped:
        layout.encoding["dropped_string"] = dropped
    if not layout.feature_dim:
        raise SourceError(f"{path}: no feature attribute is left besides the labels "
                          "and the string attributes")
    return layout


def _row_error(path, line, attributes, layout, values) -> SourceError:
    """The first bad value of a row the fast path refused."""
    for p in layout.labels + layout.number_positions + [p for p, _ in layout.one_hot]:
        value, name = values[p], attributes[p].name
        what = "label" if p in layout.labels else "feature"
        if value is None:
            return SourceError(f"{path} line {line}: {what} {name!r} is missing ('?'); "
                               f"mltf needs complete {what}s (impute the missing values first)")
        if attributes[p].kind == "nominal":
            continue
        number = float(value)
        if what == "label" and number not in (0.0, 1.0):
            return SourceError(f"{path} line {line}: label {name!r} has '{number:g}'; "
                               "expected 0 or 1")
        if not np.isfinite(number):
            return SourceError(f"{path} line {line}: feature {name!r} has '{number:g}'; "
                               "features must be finite")
    raise AssertionError("_row_error called on a good row")


def _items(path: str, rows, split: str, attributes: List[Attribute],
           layout: _Layout) -> List[Item]:
    items = []
    for row_index, (line, values) in enumerate(rows):
        # None ('?') becomes NaN here, so one finiteness check finds it.
        on = np.asarray([values[p] for p in layout.labels], np.float64)
        features = np.zeros(layout.feature_dim, np.float32)
        features[layout.number_columns] = [values[p] for p in layout.number_positions]
        on[layout.labels_flipped] = 1 - on[layout.labels_flipped]
        features[layout.columns_flipped] = 1 - features[layout.columns_flipped]
        bad = not (np.isin(on, (0.0, 1.0)).all() and np.isfinite(features).all())
        for p, column in layout.one_hot:
            if values[p] is None:
                bad = True
            else:
                features[column + values[p]] = 1.0
        if bad:
            raise _row_error(path, line, attributes, layout, values)
        items.append(Item(key=f"{split}-{row_index:06d}",
                          labels=np.flatnonzero(on).tolist(), features=features))
    if not items:
        raise SourceError(f"{path}: no data rows under @data")
    return items


def _check_same_attributes(train: str, a: List[Attribute], test: str,
                           b: List[Attribute]) -> None:
    for x, y in zip(a, b):
        if x.signature() != y.signature():
            raise SourceError(
                f"{test} line {y.line}: attribute {y.describe()} differs from {train} "
                f"line {x.line}: {x.describe()}; the train and test files must declare "
                "the same attributes")
    if len(a) != len(b):
        longer, extra, shorter = ((train, a[len(b)], test) if len(a) > len(b)
                                  else (test, b[len(a)], train))
        raise SourceError(
            f"{longer} line {extra.line}: attribute {extra.describe()} is not in "
            f"{shorter} ({len(a)} vs {len(b)} attributes); the train and test files "
            "must declare the same attributes")


def load(options: Options) -> SourceData:
    if not options.arff_train:
        raise SourceError("the arff source needs --arff_train")
    path = options.arff_train
    with _open_arff(path) as (relation, attributes, rows):
        positions = _label_positions(path, relation, attributes, options.num_labels)
        layout = _layout(path, attributes, positions)
        train_items = _items(path, rows, "train", attributes, layout)
    splits: Dict[str, List[Item]] = {ALL: train_items}
    if options.arff_test:
        with _open_arff(options.arff_test) as (_, test_attributes, rows):
            _check_same_attributes(path, attributes, options.arff_test, test_attributes)
            splits = {"train": train_items,
                      "test": _items(options.arff_test, rows, "test", attributes, layout)}
    return SourceData(label_names=[attributes[p].name for p in positions], splits=splits,
                      kind="features", feature_dim=layout.feature_dim,
                      feature_encoding=layout.encoding)
