"""``arff`` source: multi-label feature vectors in MULAN / MEKA ARFF files.

``--arff_train`` (and optionally ``--arff_test``) name ARFF files such as
``../shared/data/mulan/scene/scene-train.arff``. Each data row becomes one
feature record (``kind == "features"``): the non-label attributes, in file
order, are the feature vector; the label attributes give the label indices.

Which attributes are labels:

- ``--num_labels=k``: the last ``k`` attributes;
- else a MEKA relation name with ``-C k`` (e.g. ``@relation 'scene: -C -6'``):
  as in MEKA, ``-C -k`` means the last ``k`` attributes and ``-C k`` (k > 0)
  the first ``k``;
- else the trailing run of attributes whose type is the nominal ``{0,1}``
  (how MULAN files are written).

The parser is self-contained (no liac-arff or scipy): ``@relation``,
``@attribute`` (names may be quoted; types ``numeric``/``real``/``integer`` or
nominal ``{a,b,...}``), ``@data``, ``%`` comment lines and blank lines, with
dense (``v1,v2,...``) or sparse (``{index value, ...}``) rows. In a sparse row
an omitted numeric value is 0 and an omitted nominal value is the first value
the attribute declares (0 for ``{0,1}``), as in Weka.

mltf wants complete numeric features, so a nominal/string/date feature
attribute, a missing value (``?``) in a feature, a non-numeric feature value,
a label value other than 0/1, a row with the wrong number of fields and train
and test files whose attribute lists differ are all errors naming the file
and line.

Record keys are ``train-000000``, ``test-000000``, ... (row index in its
file). With only a train file the converter makes a seeded train/val split.
"""

import dataclasses
import math
import re
from typing import Dict, List, Optional, Tuple

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
    num_labels: Optional[int] = option("integer", None, "the last k attributes are the labels "
                                       "(default: the trailing {0,1} attributes).")


_NUMERIC_TYPES = {"numeric", "real", "integer"}
_MEKA_C = re.compile(r"(?:^|\s)-C\s+(-?\d+)(?=\s|$|['\"])")


@dataclasses.dataclass
class Attribute:
    name: str
    type: str  # "numeric", "nominal" or the declared type, lower-cased
    values: Optional[List[str]]  # nominal values, else None
    line: int

    def signature(self) -> Tuple:
        return (self.name, self.type, tuple(self.values or ()))

    def describe(self) -> str:
        if self.type == "nominal":
            return f"{self.name!r} {{{','.join(self.values)}}}"
        return f"{self.name!r} {self.type}"


@dataclasses.dataclass
class ArffFile:
    path: str
    relation: str
    attributes: List[Attribute]
    # (line number, one string per attribute; None where a sparse row omits it)
    rows: List[Tuple[int, List[Optional[str]]]]


def _unquote(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        body = token[1:-1]
        return re.sub(r"\\(.)", r"\1", body)
    return token


def _take_token(text: str, path: str, line: int) -> Tuple[str, str]:
    """Splits the first (possibly quoted) token off ``text``."""
    text = text.lstrip()
    if not text:
        raise SourceError(f"{path} line {line}: missing name")
    if text[0] in "'\"":
        quote = text[0]
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                return _unquote(text[:i + 1]), text[i + 1:]
            i += 1
        raise SourceError(f"{path} line {line}: unclosed quote in {text!r}")
    m = re.match(r"[^\s{]+", text)
    if m is None:
        raise SourceError(f"{path} line {line}: missing name before {text!r}")
    return m.group(0), text[m.end():]


def _split_values(text: str) -> List[str]:
    """Comma-separated values, honouring simple quotes."""
    if "'" not in text and '"' not in text:
        return [v.strip() for v in text.split(",")]
    out, current, quote, i = [], [], None, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and i + 1 < len(text):
                current.append(text[i:i + 2])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == ",":
            out.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    out.append("".join(current))
    return [_unquote(v) for v in out]


def _parse_attribute(rest: str, path: str, line: int) -> Attribute:
    name, rest = _take_token(rest, path, line)
    rest = rest.strip()
    if rest.startswith("{"):
        if not rest.endswith("}"):
            raise SourceError(f"{path} line {line}: attribute {name!r}: "
                              f"unclosed nominal value list {rest!r}")
        values = [v for v in _split_values(rest[1:-1])]
        if any(v == "" for v in values):
            raise SourceError(f"{path} line {line}: attribute {name!r}: empty "
                              f"nominal value in {rest!r}")
        return Attribute(name, "nominal", values, line)
    if not rest:
        raise SourceError(f"{path} line {line}: attribute {name!r} has no type")
    kind = rest.split()[0].lower()
    if kind in _NUMERIC_TYPES:
        kind = "numeric"
    return Attribute(name, kind, None, line)


def parse_arff(path: str) -> ArffFile:
    """Reads an ARFF file's header and rows (values are kept as strings)."""
    require_file(path, "ARFF file")
    relation = ""
    attributes: List[Attribute] = []
    rows: List[Tuple[int, List[Optional[str]]]] = []
    in_data = False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_no, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text or text.startswith("%"):
                continue
            if not in_data:
                if not text.startswith("@"):
                    raise SourceError(f"{path} line {line_no}: expected "
                                      f"@relation, @attribute or @data, got "
                                      f"{text[:60]!r}")
                m = re.match(r"(@\w+)(.*)$", text)
                keyword = m.group(1).lower() if m else text.split()[0]
                rest = m.group(2) if m else ""
                if keyword == "@relation":
                    relation = _unquote(rest.strip())
                elif keyword == "@attribute":
                    attributes.append(_parse_attribute(rest, path, line_no))
                elif keyword == "@data":
                    if not attributes:
                        raise SourceError(f"{path} line {line_no}: @data "
                                          "before any @attribute")
                    in_data = True
                else:
                    raise SourceError(f"{path} line {line_no}: unknown "
                                      f"declaration {keyword!r}")
                continue
            rows.append((line_no, _parse_row(text, len(attributes), path,
                                             line_no)))
    if not in_data:
        raise SourceError(f"{path}: no @data section")
    names = [a.name for a in attributes]
    if len(set(names)) != len(names):
        dup = next(a for i, a in enumerate(attributes) if a.name in names[:i])
        raise SourceError(f"{path} line {dup.line}: attribute {dup.name!r} is "
                          "declared twice")
    if not rows:
        raise SourceError(f"{path}: no data rows under @data")
    return ArffFile(path, relation, attributes, rows)


def _parse_row(text: str, n: int, path: str, line: int) -> List[Optional[str]]:
    if text.startswith("{"):
        if not text.endswith("}"):
            raise SourceError(f"{path} line {line}: sparse row is not closed "
                              "with '}'")
        values: List[Optional[str]] = [None] * n
        body = text[1:-1].strip()
        if not body:
            return values
        for entry in body.split(","):
            parts = entry.strip().split(None, 1)
            if len(parts) != 2:
                raise SourceError(f"{path} line {line}: sparse entry "
                                  f"{entry.strip()!r} is not 'index value'")
            try:
                index = int(parts[0])
            except ValueError:
                raise SourceError(f"{path} line {line}: sparse index "
                                  f"{parts[0]!r} is not an integer") from None
            if not 0 <= index < n:
                raise SourceError(f"{path} line {line}: sparse index {index} "
                                  f"outside 0..{n - 1}")
            if values[index] is not None:
                raise SourceError(f"{path} line {line}: sparse index {index} "
                                  "appears twice")
            values[index] = _unquote(parts[1])
        return values
    values = _split_values(text)
    if len(values) != n:
        raise SourceError(f"{path} line {line}: {len(values)} fields, the "
                          f"header declares {n} attributes")
    return values


def _label_positions(arff: ArffFile, num_labels: Optional[int]) -> List[int]:
    """Indices of the label attributes (see the module docstring)."""
    n = len(arff.attributes)
    if num_labels is not None:
        k = int(num_labels)
        if not 0 < k < n:
            raise SourceError(f"{arff.path}: --num_labels={k} must be between "
                              f"1 and {n - 1} (the file has {n} attributes)")
        return list(range(n - k, n))
    m = _MEKA_C.search(arff.relation)
    if m:
        c = int(m.group(1))
        if c == 0 or abs(c) >= n:
            raise SourceError(f"{arff.path}: relation {arff.relation!r} has "
                              f"-C {c}, but the file has {n} attributes")
        return list(range(c)) if c > 0 else list(range(n + c, n))
    k = 0
    for attribute in reversed(arff.attributes):
        if attribute.type == "nominal" and sorted(attribute.values) == ["0", "1"]:
            k += 1
        else:
            break
    if k == 0:
        raise SourceError(
            f"{arff.path}: cannot tell which attributes are labels: the last "
            "attribute is not nominal {0,1} and the relation name has no MEKA "
            "-C option; pass --num_labels")
    if k >= n:
        raise SourceError(f"{arff.path}: every attribute is {{0,1}}; pass "
                          "--num_labels to say how many of the last ones are "
                          "labels")
    return list(range(n - k, n))


def _check_types(arff: ArffFile, label_positions: List[int]) -> None:
    labels = set(label_positions)
    for i, a in enumerate(arff.attributes):
        if i in labels:
            if a.type == "numeric":
                continue
            if a.type == "nominal" and set(a.values) <= {"0", "1"}:
                continue
            raise SourceError(f"{arff.path} line {a.line}: label attribute "
                              f"{a.describe()} must be nominal {{0,1}} or "
                              "numeric 0/1")
        elif a.type != "numeric":
            raise SourceError(
                f"{arff.path} line {a.line}: feature attribute {a.describe()} "
                "is not numeric; mltf needs numeric features (encode it as "
                "numbers, or count it among the labels with --num_labels)")


def _check_same_attributes(train: ArffFile, test: ArffFile) -> None:
    a, b = train.attributes, test.attributes
    for x, y in zip(a, b):
        if x.signature() != y.signature():
            raise SourceError(
                f"{test.path} line {y.line}: attribute {y.describe()} differs "
                f"from {train.path} line {x.line}: {x.describe()}; the train "
                "and test files must declare the same attributes")
    if len(a) != len(b):
        longer, shorter = (train, test) if len(a) > len(b) else (test, train)
        extra = longer.attributes[len(shorter.attributes)]
        raise SourceError(
            f"{longer.path} line {extra.line}: attribute {extra.describe()} is "
            f"not in {shorter.path} ({len(a)} vs {len(b)} attributes); the "
            "train and test files must declare the same attributes")


def _items(arff: ArffFile, split: str, label_positions: List[int]) -> List[Item]:
    label_index = {p: j for j, p in enumerate(label_positions)}
    attributes = arff.attributes
    feature_positions = [i for i in range(len(attributes)) if i not in label_index]
    items = []
    for row_index, (line, values) in enumerate(arff.rows):
        labels = []
        for p, j in label_index.items():
            value = values[p]
            if value is None:  # omitted in a sparse row
                a = attributes[p]
                value = a.values[0] if a.type == "nominal" else "0"
            if value in ("1", "0"):
                is_on = value == "1"
            else:
                try:
                    number = float(value)
                except ValueError:
                    number = None
                if number not in (0.0, 1.0):
                    raise SourceError(
                        f"{arff.path} line {line}: label {attributes[p].name!r} "
                        f"has {value!r}; expected 0 or 1")
                is_on = number == 1.0
            if is_on:
                labels.append(j)
        features = np.zeros(len(feature_positions), np.float32)
        for k, p in enumerate(feature_positions):
            value = values[p]
            if value is None:
                continue
            if value == "?":
                raise SourceError(
                    f"{arff.path} line {line}: feature {attributes[p].name!r} "
                    "is missing ('?'); mltf needs complete features (impute "
                    "the missing values first)")
            try:
                number = float(value)
            except ValueError:
                raise SourceError(
                    f"{arff.path} line {line}: feature {attributes[p].name!r} "
                    f"has {value!r}, which is not a number") from None
            if not math.isfinite(number):
                raise SourceError(
                    f"{arff.path} line {line}: feature {attributes[p].name!r} "
                    f"has {value!r}; features must be finite")
            features[k] = number
        items.append(Item(key=f"{split}-{row_index:06d}", labels=sorted(labels),
                          features=features))
    return items


def load(options: Options) -> SourceData:
    if not options.arff_train:
        raise SourceError("the arff source needs --arff_train")
    train = parse_arff(options.arff_train)
    label_positions = _label_positions(train, options.num_labels)
    _check_types(train, label_positions)
    test = None
    if options.arff_test:
        test = parse_arff(options.arff_test)
        _check_same_attributes(train, test)
    label_names = [train.attributes[p].name for p in label_positions]
    feature_dim = len(train.attributes) - len(label_positions)
    train_items = _items(train, "train", label_positions)
    splits: Dict[str, List[Item]]
    if test is None:
        splits = {ALL: train_items}
    else:
        splits = {"train": train_items,
                  "test": _items(test, "test", label_positions)}
    return SourceData(label_names=label_names, splits=splits, kind="features",
                      feature_dim=feature_dim)
