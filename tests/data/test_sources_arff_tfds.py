"""The ``arff`` and ``tfds`` sources."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import load_arff as _load
from conftest import read_records
from conftest import write_text as _write
from mltf.data import writer
from mltf.data.sources import ALL, SourceError
from mltf.data.sources import tfds_source

# --------------------------------------------------------------------------
# arff
# --------------------------------------------------------------------------

_DENSE_ATTRIBUTES = """\
@attribute f1 numeric
@ATTRIBUTE 'feature two' REAL
@attribute "f3" integer
@attribute Beach {0,1}
@attribute 'Fall Foliage' {0, 1}
"""

DENSE_TRAIN = """\
% A tiny MULAN-style file.
% comment lines and blank lines are ignored

@RELATION tiny

""" + _DENSE_ATTRIBUTES + """
@data
% a comment inside the data
0.5,1.25,3,1,0
-2,0,7,0,0

1e-3, 4.5 ,-1,1,1
"""

# The same attributes, spelled as another writer would: still the same.
DENSE_TEST = ("@relation tiny\n"
              + _DENSE_ATTRIBUTES.replace("@ATTRIBUTE", "@attribute")
              .replace("REAL", "real").replace("{0, 1}", "{0,1}")
              + "@data\n9,8,7,0,1\n")

SPARSE = """\
@relation sparse
@attribute a numeric
@attribute b numeric
@attribute c numeric
@attribute L1 {0,1}
@attribute L2 {0,1}
@attribute L3 {0,1}
@data
{0 1.5,4 1}
{}
{1 -2,2 3,3 1,5 1}
{2 0.25}
"""


def _records_by_id(data_dir, split):
    info, records = read_records(data_dir, split)
    return info, {r["id"]: r for r in records}


def test_arff_dense_train_and_test(tmp_path):
    train = _write(tmp_path, "t-train.arff", DENSE_TRAIN)
    test = _write(tmp_path, "t-test.arff", DENSE_TEST)
    data = _load(arff_train=train, arff_test=test)
    assert data.kind == "features"
    assert data.feature_dim == 3
    assert data.label_names == ["Beach", "Fall Foliage"]
    assert sorted(data.splits) == ["test", "train"]

    out = tmp_path / "out"
    info = writer.write_dataset(data, str(out), source_name="arff",
                                progress=False)
    assert info.kind == "features" and info.feature_dim == 3
    assert info.label_names == ["Beach", "Fall Foliage"]
    assert info.splits["train"].num_examples == 3
    assert info.splits["test"].num_examples == 1
    assert info.splits["train"].label_counts == [2, 1]

    _, train_records = _records_by_id(out, "train")
    expected = {
        "train-000000": ([0.5, 1.25, 3.0], [0]),
        "train-000001": ([-2.0, 0.0, 7.0], []),
        "train-000002": ([0.001, 4.5, -1.0], [0, 1]),
    }
    assert sorted(train_records) == sorted(expected)
    for key, (features, labels) in expected.items():
        np.testing.assert_allclose(train_records[key]["features"], features,
                                   rtol=1e-6)
        assert train_records[key]["labels"] == labels
    _, test_records = _records_by_id(out, "test")
    assert list(test_records) == ["test-000000"]
    np.testing.assert_allclose(test_records["test-000000"]["features"],
                               [9, 8, 7])
    assert test_records["test-000000"]["labels"] == [1]


def test_arff_sparse_train_only_is_one_split(tmp_path):
    path = _write(tmp_path, "sparse.arff", SPARSE)
    data = _load(arff_train=path)
    # No test file: one split named ALL, so the converter makes a seeded split.
    assert list(data.splits) == [ALL]
    assert data.label_names == ["L1", "L2", "L3"]
    assert data.feature_dim == 3

    out = tmp_path / "out"
    info = writer.write_dataset(data, str(out), val_fraction=0.0,
                                progress=False)
    assert list(info.splits) == ["train"]
    _, records = _records_by_id(out, "train")
    expected = {
        "train-000000": ([1.5, 0, 0], [1]),
        "train-000001": ([0, 0, 0], []),
        "train-000002": ([0, -2, 3], [0, 2]),
        "train-000003": ([0, 0, 0.25], []),
    }
    assert sorted(records) == sorted(expected)
    for key, (features, labels) in expected.items():
        np.testing.assert_allclose(records[key]["features"], features)
        assert records[key]["labels"] == labels
    assert info.splits["train"].label_counts == [1, 1, 1]
    assert info.splits["train"].num_empty == 2


def test_arff_seeded_split_of_train_only(tmp_path):
    path = _write(tmp_path, "sparse.arff", SPARSE)
    info = writer.write_dataset(_load(arff_train=path), str(tmp_path / "out"),
                                val_fraction=0.25, progress=False)
    assert {k: v.num_examples for k, v in info.splits.items()} == {
        "train": 3, "val": 1}


MEKA = """\
@relation 'meka data: -C {c} -split-percentage 50'
@attribute x1 numeric
@attribute x2 numeric
@attribute x3 numeric
@attribute x4 numeric
@data
1,0,0.5,1
0,1,2.5,0
"""


def test_arff_meka_c(tmp_path):
    text = MEKA.replace("0.5,1\n", "1,1\n").replace("2.5,0\n", "0,0\n")
    last = _load(arff_train=_write(tmp_path, "last.arff",
                                   text.format(c=-2)))
    assert last.label_names == ["x3", "x4"] and last.feature_dim == 2
    assert [i.labels for i in last.splits[ALL]] == [[0, 1], []]
    np.testing.assert_allclose(last.splits[ALL][1].features, [0, 1])
    # MEKA: a positive -C k means the first k attributes are the labels.
    first = _load(arff_train=_write(tmp_path, "first.arff",
                                    text.format(c=2)))
    assert first.label_names == ["x1", "x2"] and first.feature_dim == 2
    assert [i.labels for i in first.splits[ALL]] == [[0], [1]]
    np.testing.assert_allclose(first.splits[ALL][0].features, [1, 1])
    # --num_labels overrides -C: the last k.
    three = _load(arff_train=_write(tmp_path, "n.arff", text.format(c=2)),
                  num_labels=3)
    assert three.label_names == ["x2", "x3", "x4"] and three.feature_dim == 1


def test_arff_meka_c_on_real_values_is_a_label_error(tmp_path):
    path = _write(tmp_path, "m.arff", MEKA.format(c=-2))
    with pytest.raises(SourceError, match=re.escape(path)
                       + r" line 7: label 'x3' has '0.5'; expected 0 or 1"):
        _load(arff_train=path)


def test_arff_trailing_01_inference(tmp_path):
    text = """\
@relation r
@attribute a numeric
@attribute b {1,0}
@attribute c {0,1}
@attribute d {0,1}
@data
0.5,1,0,1
"""
    # b, c and d are all {0,1}: all three are labels.
    data = _load(arff_train=_write(tmp_path, "r.arff", text))
    assert data.label_names == ["b", "c", "d"] and data.feature_dim == 1
    assert data.splits[ALL][0].labels == [0, 2]
    # --num_labels=2 makes b a feature: nominal {1,0}, so read as a number.
    two = _load(arff_train=_write(tmp_path, "r2.arff", text), num_labels=2)
    assert two.label_names == ["c", "d"] and two.feature_dim == 2
    np.testing.assert_allclose(two.splits[ALL][0].features, [0.5, 1.0])
    assert two.splits[ALL][0].labels == [1]


def _expect_error(tmp_path, text, match, **kwargs):
    path = _write(tmp_path, "bad.arff", text)
    with pytest.raises(SourceError, match=re.escape(path) + match):
        _load(arff_train=path, **kwargs)


HEADER = """\
@relation r
@attribute a numeric
@attribute b numeric
@attribute L1 {0,1}
@attribute L2 {0,1}
@data
"""


def test_arff_errors(tmp_path):
    # A label value other than 0/1 (dense and sparse); liac-arff refuses a
    # value the nominal {0,1} does not declare, before mltf sees the row.
    _expect_error(tmp_path, HEADER + "1,2,0,1\n1,2,2,0\n",
                  r" line 8: a value its nominal attribute does not declare: 1,2,2,0")
    _expect_error(tmp_path, HEADER + "{0 1,3 5}\n",
                  r" line 7: a value its nominal attribute does not declare: "
                  r"\{0 1,3 5\}")
    # Wrong number of fields.
    _expect_error(tmp_path, HEADER + "1,2,0,1\n1,2,0\n",
                  r" line 8: the row does not fit the header \(wrong number of values")
    # A non-numeric feature value.
    _expect_error(tmp_path, HEADER + "1,abc,0,1\n",
                  r" line 7: a value of a numeric attribute is not a number: 1,abc,0,1")
    # A missing feature value.
    _expect_error(tmp_path, HEADER + "1,2,0,1\n\n?,2,0,1\n",
                  r" line 9: feature 'a' is missing \('\?'\); mltf needs "
                  "complete features")
    # Sparse index out of range.
    _expect_error(tmp_path, HEADER + "{7 1}\n",
                  r" line 7: the row does not fit the header .*sparse index past")
    # No way to tell the labels.
    _expect_error(tmp_path, HEADER.replace("{0,1}", "numeric") + "1,2,0,1\n",
                  r": cannot tell which attributes are labels")
    # No data.
    _expect_error(tmp_path, HEADER, r": no data rows")
    _expect_error(tmp_path, HEADER.replace("@data\n", ""), r": no @data")
    # A bad --num_labels.
    _expect_error(tmp_path, HEADER + "1,2,0,1\n", r": --num_labels=4 must be",
                  num_labels=4)
    with pytest.raises(SourceError, match="ARFF file not found"):
        _load(arff_train=str(tmp_path / "absent.arff"))


def test_arff_train_test_attributes_differ(tmp_path):
    train = _write(tmp_path, "train.arff", HEADER + "1,2,0,1\n")
    renamed = _write(tmp_path, "renamed.arff",
                     HEADER.replace("attribute b", "attribute B") + "1,2,0,1\n")
    with pytest.raises(SourceError, match=re.escape(renamed)
                       + r" line 3: attribute 'B' numeric differs from "
                       + re.escape(train) + r" line 3: 'b' numeric"):
        _load(arff_train=train, arff_test=renamed)
    shorter = _write(tmp_path, "shorter.arff",
                     HEADER.replace("@attribute L2 {0,1}\n", "") + "1,2,0\n")
    with pytest.raises(SourceError, match=re.escape(train)
                       + r" line 5: attribute 'L2' \{0,1\} is not in "
                       + re.escape(shorter)):
        _load(arff_train=train, arff_test=shorter)


SCENE_LABELS = ["Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"]


def _numpy_parse(path):
    """Independent plain-numpy reading of a dense ARFF file's @data rows."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = [i for i, line in enumerate(lines) if line.strip().lower() == "@data"][0]
    rows = [line for line in lines[start + 1:] if line.strip() and not line.startswith("%")]
    return np.array([r.split(",") for r in rows], dtype=np.float64)


def test_arff_mulan_scene(shared_data, tmp_path):
    folder = os.path.join(shared_data, "mulan", "scene")
    train, test = (os.path.join(folder, f"scene-{s}.arff")
                   for s in ("train", "test"))
    data = _load(arff_train=train, arff_test=test)
    assert data.feature_dim == 294
    assert data.label_names == SCENE_LABELS
    info = writer.write_dataset(data, str(tmp_path / "scene"),
                                source_name="arff", progress=False)
    assert info.feature_dim == 294 and info.label_names == SCENE_LABELS
    for split, path, n in (("train", train, 1211), ("test", test, 1196)):
        table = _numpy_parse(path)
        assert table.shape == (n, 294 + 6)
        assert info.splits[split].num_examples == n
        expected_counts = table[:, 294:].sum(axis=0).astype(int).tolist()
        assert info.splits[split].label_counts == expected_counts
        labels = np.load(tmp_path / "scene" / f"{split}.labels.npy")
        assert labels.sum(axis=0).tolist() == expected_counts
    # One record checked value by value.
    _, records = _records_by_id(tmp_path / "scene", "test")
    table = _numpy_parse(test)
    record = records["test-000005"]
    np.testing.assert_allclose(record["features"], table[5, :294], rtol=1e-6)
    assert record["labels"] == np.flatnonzero(table[5, 294:]).tolist()


# --------------------------------------------------------------------------
# tfds
# --------------------------------------------------------------------------

NAMES = ["cat", "dog", "bird"]
TINY_LABELS = {"train": [[0], [1, 2], [], [2], [0, 1, 2]],
               "test": [[1], [0, 2], [2]]}


def _tiny_image(split, i):
    rng = np.random.default_rng(100 * (split == "test") + i)
    return rng.integers(0, 256, size=(6 + i, 5, 3), dtype=np.uint8)


class TinyMulti(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A multi-label TFDS dataset generated locally (no download)."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "image/filename": tfds.features.Text(),
            "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=NAMES)),
            "objects": tfds.features.Sequence({
                "label": tfds.features.ClassLabel(names=NAMES),
                "area": np.float32}),
            "caption": tfds.features.Text(),
        }))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in TINY_LABELS}

    def _generate_examples(self, split):
        for i, labels in enumerate(TINY_LABELS[split]):
            # objects: one per label occurrence, with a repeat.
            objects = labels + labels[:1]
            yield f"{split}{i}", {
                "image": _tiny_image(split, i),
                "image/filename": f"{split}_{i}.png",
                "labels": labels,
                "objects": {"label": objects, "area": [1.0] * len(objects)},
                "caption": "x",
            }


class TinyArrays(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images as a plain uint8 tensor, one ClassLabel, no file name; -1 is
    TFDS's unknown label."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "pixels": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=NAMES),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(), "validation": self._generate_examples()}

    def _generate_examples(self):
        for i, label in enumerate([2, -1, 0]):
            yield i, {"pixels": np.full((4, 4, 3), 10 * i, np.uint8),
                      "label": label}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """TinyMulti and TinyArrays, prepared (locally generated) once."""
    root = tmp_path_factory.mktemp("tfds")
    tfds.disable_progress_bar()
    for cls in (TinyMulti, TinyArrays):
        builder = cls(data_dir=str(root))
        builder.download_and_prepare()
    return str(root)


def _tfds(**kwargs):
    return tfds_source.load(tfds_source.Options(**kwargs))


def test_tfds_prepared_dataset(tfds_dir, tmp_path):
    data = _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir)
    assert data.kind == "image"
    assert data.label_names == NAMES
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 5, "test": 3}
    # Encoded bytes are passed on without decoding.
    assert all(item.data is not None and item.array is None
               for items in data.splits.values() for item in items)

    out = tmp_path / "out"
    info = writer.write_dataset(data, str(out), source_name="tfds",
                                progress=False)
    assert info.label_names == NAMES
    for split, expected in TINY_LABELS.items():
        assert info.splits[split].num_examples == len(expected)
        assert info.splits[split].num_skipped == 0
        _, records = _records_by_id(out, split)
        assert sorted(records) == sorted(f"{split}_{i}.png"
                                         for i in range(len(expected)))
        for i, labels in enumerate(expected):
            record = records[f"{split}_{i}.png"]
            assert record["labels"] == labels
            image = tf.io.decode_image(record["encoded"]).numpy()
            np.testing.assert_array_equal(image, _tiny_image(split, i))
            assert (record["height"], record["width"]) == image.shape[:2]


def test_tfds_nested_label_key_and_split_choice(tfds_dir):
    data = _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir,
                 tfds_label_key="objects/label", tfds_splits=["test"])
    assert data.label_names == NAMES
    assert list(data.splits) == ["test"]
    got = {item.key: list(item.labels) for item in data.splits["test"]}
    assert got == {f"test_{i}.png": labels
                   for i, labels in enumerate(TINY_LABELS["test"])}


def test_tfds_array_images_single_label(tfds_dir, tmp_path):
    data = _tfds(tfds_name="tiny_arrays", tfds_data_dir=tfds_dir,
                 tfds_image_key="pixels", tfds_label_key="label")
    # 'validation' is written as mltf's 'val'.
    assert sorted(data.splits) == ["train", "val"]
    # Splits are streamed: the -1 examples are counted as they are read.
    assert data.dropped == {}
    for split, items in data.splits.items():
        # No file-name feature: keys are <split>-<position in the TFDS split>.
        assert all(re.fullmatch(split + r"-000000[0-2]", item.key)
                   for item in items)
        assert len({item.key for item in items}) == 2
        assert sorted(tuple(item.labels) for item in items) == [(0,), (2,)]
        # Decoded arrays are passed on as arrays (the writer encodes PNG).
        assert all(item.array is not None and item.array.dtype == np.uint8
                   for item in items)
    assert data.dropped == {"train: unknown label (-1)": 1,
                            "val: unknown label (-1)": 1}
    out = tmp_path / "out"
    writer.write_dataset(data, str(out), progress=False)
    _, records = read_records(out, "val")
    by_label = {tuple(r["labels"]): r for r in records}
    assert sorted(by_label) == [(0,), (2,)]
    # Label 0 was generated with pixels 20, label 2 with pixels 0.
    for labels, value in (((0,), 20), ((2,), 0)):
        image = tf.io.decode_png(by_label[labels]["encoded"]).numpy()
        np.testing.assert_array_equal(image, np.full((4, 4, 3), value, np.uint8))


def test_tfds_unknown_keys_and_split(tfds_dir):
    with pytest.raises(SourceError, match=r"no image feature 'img'; its "
                       r"features are: caption, image, image/filename, "
                       r"labels, objects, objects/area, objects/label$"):
        _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir,
              tfds_image_key="img")
    with pytest.raises(SourceError, match=r"no label feature 'objects/bbox'"
                       r".*objects/label"):
        _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir,
              tfds_label_key="objects/bbox")
    with pytest.raises(SourceError, match=r"'caption' .* not a ClassLabel"):
        _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir,
              tfds_label_key="caption")
    with pytest.raises(SourceError, match=r"no split 'validation'; it has: "
                       r"(train, test|test, train)"):
        _tfds(tfds_name="tiny_multi", tfds_data_dir=tfds_dir,
              tfds_splits=["validation"])


def test_tfds_not_prepared_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("the tfds source must never download")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        no_download)
    empty = tmp_path / "empty"
    with pytest.raises(SourceError, match=r"'voc/2007' is not prepared: "
                       + re.escape(str(empty / "voc" / "2007" / "5.0.0"))
                       + r" .*mltf never downloads"):
        _tfds(tfds_name="voc/2007", tfds_data_dir=str(empty))
    # A version folder without dataset_info.json is not prepared either.
    (empty / "voc" / "2007" / "5.0.0").mkdir(parents=True)
    with pytest.raises(SourceError, match="is not prepared"):
        _tfds(tfds_name="voc/2007", tfds_data_dir=str(empty))
    with pytest.raises(SourceError, match=r"cannot open TFDS dataset "
                       r"'no_such_dataset_xyz'"):
        _tfds(tfds_name="no_such_dataset_xyz", tfds_data_dir=str(empty))
    with pytest.raises(SourceError, match="needs --tfds_name"):
        _tfds()


VOC_NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
             "cat", "chair", "cow", "diningtable", "dog", "horse",
             "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor"]


def test_tfds_mock_voc2007(tmp_path):
    """The real voc/2007 feature spec, with tfds.testing.mock_data.

    mock_data needs the dataset's metadata files (none ship with the pip
    package); they are written here from the registered builder, offline.
    """
    metadata = tmp_path / "metadata"
    builder = tfds.builder("voc/2007", data_dir=str(metadata))
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=s, shard_lengths=[4], num_bytes=0)
        for s in ("train", "validation", "test")]))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)

    with tfds.testing.mock_data(num_examples=4, data_dir=str(metadata),
                                policy=tfds.testing.MockPolicy.USE_FILES):
        data = _tfds(tfds_name="voc/2007", tfds_data_dir="/not/used/by/mock")
        nested = _tfds(tfds_name="voc/2007", tfds_label_key="objects/label",
                       tfds_splits=["test"])
    assert data.label_names == VOC_NAMES
    assert nested.label_names == VOC_NAMES
    # mock_data yields num_examples per split.
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 4, "val": 4, "test": 4}
    assert len(nested.splits["test"]) == 4
    for item in data.splits["train"]:
        assert item.data is not None  # encoded, not decoded
        assert item.key and not item.key.startswith("train-")  # image/filename
        assert all(0 <= i < 20 for i in item.labels)
    info = writer.write_dataset(data, str(tmp_path / "out"), progress=False)
    assert info.splits["train"].num_skipped == 0
    _, records = read_records(tmp_path / "out", "train")
    assert len(records) == 4
    for record in records:
        image = tf.io.decode_image(record["encoded"]).numpy()
        assert image.shape == (record["height"], record["width"], 3)
