"""``tfds`` source: a TensorFlow Datasets dataset already prepared on disk.

``--tfds_name`` (e.g. ``voc/2007``) is opened with
``tfds.builder(name, data_dir=--tfds_data_dir)``. mltf never downloads: when
the dataset is not prepared in that folder (no ``dataset_info.json`` in its
version folder) this is an error that names the folder; prepare it first with
``tfds build`` on a machine with internet access.

- Splits: ``--tfds_splits`` or every split of the dataset. A TFDS
  ``validation`` split is written as mltf's ``val`` (unless the dataset also
  has a ``val`` split).
- ``--tfds_image_key`` (default ``image``): the image feature. Encoded bytes
  are read without decoding (``tfds.decode.SkipDecoding``); a feature that is
  a plain uint8 tensor is passed on as an array (the writer encodes it as PNG).
- ``--tfds_label_key`` (default ``labels``): a ``ClassLabel`` or a
  ``Sequence(ClassLabel)``; ``/`` reaches into nested features, e.g.
  ``objects/label`` (COCO). Label names are the ClassLabel's names. An example
  whose label is -1 (TFDS's "unknown", e.g. unlabelled test splits) is left
  out and counted in ``dropped``.
- Keys: the dataset's file name / id feature when it has one
  (``image/filename``, ``filename``, ``file_name``, ``image/id``,
  ``image_id``, ``id``), else ``<split>-0000000``.

Only the image, label and key features are decoded (``PartialDecoding``).
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mltf.data.sources.base import (Item, SharedOptions, SourceData,
                                    SourceError, option)

ID_KEYS = ("image/filename", "filename", "file_name", "image/id", "image_id",
           "id")


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the tfds source.

    Args:
      tfds_name: the TFDS dataset name.
      tfds_data_dir: where it is prepared, or None for TFDS's default.
      tfds_splits: the splits to convert, or None for all.
      tfds_image_key, tfds_label_key: the image and label features.
    """
    tfds_name: Optional[str] = option("string", None,
                                      "dataset name, e.g. voc/2007.")
    tfds_data_dir: Optional[str] = option(
        "string", None,
        "where the prepared dataset lies (default: ~/tensorflow_datasets).")
    tfds_splits: Optional[Sequence[str]] = option(
        "list", None, "splits to convert (default: all).")
    tfds_image_key: str = option("string", "image", "image feature key.")
    tfds_label_key: str = option(
        "string", "labels",
        "label feature key; '/' for nested, e.g. objects/label.")


def _unwrap_sequence(feature):
    import tensorflow_datasets as tfds
    while isinstance(feature, tfds.features.Sequence):
        feature = feature.feature
    return feature


def _resolve(features, key: str) -> Optional[Tuple[List[str], object]]:
    """``key`` ('/' for nesting; a literal key with '/' wins) to
    (path of dict keys, feature), or None."""
    import tensorflow_datasets as tfds
    features = _unwrap_sequence(features)
    if not isinstance(features, tfds.features.FeaturesDict):
        return None
    if key in features.keys():
        return [key], features[key]
    for i, c in enumerate(key):
        if c != "/":
            continue
        prefix = key[:i]
        if prefix in features.keys():
            found = _resolve(features[prefix], key[i + 1:])
            if found is not None:
                return [prefix] + found[0], found[1]
    return None


def _all_keys(features, prefix: str = "") -> List[str]:
    """Every feature key (sorted), nested ones joined with '/'."""
    import tensorflow_datasets as tfds
    features = _unwrap_sequence(features)
    out = []
    if isinstance(features, tfds.features.FeaturesDict):
        for k in sorted(features.keys()):
            out.append(prefix + k)
            out.extend(_all_keys(features[k], prefix + k + "/"))
    return out


def _nested(path: List[str], leaf) -> Dict:
    out = leaf
    for k in reversed(path):
        out = {k: out}
    return out


def _merge(a: Dict, b: Dict) -> Dict:
    out = dict(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _get(example, path: List[str]):
    for k in path:
        example = example[k]
    return example


def _key_text(value) -> str:
    value = np.asarray(value)
    if value.shape:
        value = value.ravel()[0]
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _not_prepared(name: str, builder) -> SourceError:
    root = str(builder.data_dir_root)
    return SourceError(
        f"TFDS dataset {name!r} is not prepared: {builder.data_dir} does not "
        "hold a prepared dataset (no dataset_info.json). mltf never downloads; "
        f"prepare it first, e.g. `tfds build {name} --data_dir={root}` on a "
        "machine with internet access (or place the manual-download files as "
        "the dataset's TFDS page says), then pass --tfds_data_dir="
        f"{root}")


def open_builder(options: Options):
    """The TFDS builder of ``options.tfds_name``; SourceError unless prepared."""
    if not options.tfds_name:
        raise SourceError("the tfds source needs --tfds_name (e.g. voc/2007)")
    import tensorflow_datasets as tfds
    name = options.tfds_name
    try:
        builder = tfds.builder(name, data_dir=options.tfds_data_dir)
    except Exception as e:  # DatasetNotFoundError, bad config or version, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceError(f"cannot open TFDS dataset {name!r}"
                          + (f" in {options.tfds_data_dir}" if options.tfds_data_dir else "")
                          + f": {first}") from None
    is_prepared = getattr(builder, "is_prepared", None)
    prepared = is_prepared() if is_prepared else builder.data_path.exists()
    if not prepared:
        raise _not_prepared(name, builder)
    return builder


def load(options: Options) -> SourceData:
    import tensorflow_datasets as tfds
    builder = open_builder(options)
    name = options.tfds_name
    info = builder.info
    features = info.features

    def missing(what: str, key: str) -> SourceError:
        return SourceError(
            f"TFDS dataset {name!r} has no {what} feature {key!r}; its features "
            f"are: {', '.join(_all_keys(features))}")

    image = _resolve(features, options.tfds_image_key)
    if image is None:
        raise missing("image", options.tfds_image_key)
    image_path, image_feature = image
    if np.dtype(image_feature.np_dtype) != np.uint8:
        raise SourceError(f"TFDS feature {options.tfds_image_key!r} of {name!r} "
                          f"is {image_feature}; mltf needs uint8 images")
    skip_decoding = isinstance(image_feature, tfds.features.Image)

    label = _resolve(features, options.tfds_label_key)
    if label is None:
        raise missing("label", options.tfds_label_key)
    label_path, label_feature = label
    class_label = _unwrap_sequence(label_feature)
    if not isinstance(class_label, tfds.features.ClassLabel):
        raise SourceError(
            f"TFDS feature {options.tfds_label_key!r} of {name!r} is "
            f"{label_feature}, not a ClassLabel or Sequence(ClassLabel), so it "
            "has no label names; choose another --tfds_label_key from: "
            f"{', '.join(_all_keys(features))}")
    label_names = list(class_label.names)

    id_path = None
    for key in ID_KEYS:
        found = _resolve(features, key)
        if found is not None and len(found[0]) == 1 and found[1].shape == ():
            id_path = found[0]
            break

    available = list(info.splits.keys())
    if options.tfds_splits:
        splits = list(options.tfds_splits)
        unknown = [s for s in splits if s not in available]
        if unknown:
            raise SourceError(f"TFDS dataset {name!r} has no split {unknown[0]!r}; "
                              f"it has: {', '.join(available)}")
    else:
        splits = available
    if not splits:
        raise SourceError(f"TFDS dataset {name!r} in {builder.data_dir} lists "
                          "no splits")

    spec = _merge(_nested(image_path, True), _nested(label_path, True))
    if id_path is not None:
        spec = _merge(spec, _nested(id_path, True))
    decoders = (_nested(image_path, tfds.decode.SkipDecoding())
                if skip_decoding else None)
    partial = tfds.decode.PartialDecoding(spec, decoders=decoders)

    out: Dict[str, "_Stream"] = {}
    dropped: Dict[str, int] = {}
    for split in splits:
        out_name = "val" if split == "validation" and "val" not in splits else split
        ds = builder.as_dataset(split=split, decoders=partial,
                                shuffle_files=False)
        out[out_name] = _Stream(ds, info.splits[split].num_examples, out_name,
                                label_path, image_path, id_path, dropped)
    return SourceData(label_names=label_names, splits=out, dropped=dropped)


class _Stream:
    """Items of one TFDS split, read lazily (a split can be far larger than
    memory); ``len`` is the split size TFDS recorded, for the progress bar.
    Examples with an unknown label (-1) are left out and counted in
    ``dropped`` as they are met."""

    def __init__(self, ds, size, name, label_path, image_path, id_path, dropped):
        self.ds, self.size, self.name = ds, size, name
        self.label_path, self.image_path, self.id_path = label_path, image_path, id_path
        self.dropped = dropped

    def __len__(self):
        return self.size

    def __iter__(self):
        import tensorflow_datasets as tfds
        seen = set()
        unknown_label = 0
        for i, example in enumerate(tfds.as_numpy(self.ds)):
            values = np.asarray(_get(example, self.label_path)).ravel()
            if values.size and (values < 0).any():
                unknown_label += 1
                self.dropped[f"{self.name}: unknown label (-1)"] = unknown_label
                continue
            labels = sorted(set(int(v) for v in values))
            key = (_key_text(_get(example, self.id_path)) if self.id_path is not None
                   else f"{self.name}-{i:07d}")
            if not key or key in seen:
                key = f"{key}#{i:07d}"
            seen.add(key)
            value = _get(example, self.image_path)
            if isinstance(value, (bytes, np.bytes_)):
                yield Item(key=key, labels=labels, data=bytes(value))
            else:
                array = np.asarray(value)
                if array.ndim == 3 and array.shape[-1] == 4:
                    array = array[..., :3]  # drop alpha
                yield Item(key=key, labels=labels, array=array)
