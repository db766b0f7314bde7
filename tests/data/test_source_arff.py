"""The ``arff`` source on every shape of MULAN / MEKA file (issue 15): nominal
{0,1} and other nominal features, string attributes, sparse rows, MEKA -C,
MULAN .xml label files, bad files, and the real corel5k and bibtex files.

The basic dense/sparse reading and the MULAN scene file are tested in
test_sources_arff_tfds.py.
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from conftest import load_arff as _load
from conftest import read_records
from conftest import write_text as _write
from mltf.data import make_tfrecords, schema, writer
from mltf.data.sources import ALL, SourceError


def _features(data, split=ALL):
    return np.stack([i.features for i in data.splits[split]]), [i.labels for i in
                                                                data.splits[split]]


# genbase declares a string id; enron, medical, bibtex declare binary
# features as nominal {0,1}; some sets have {YES,NO} features.
MIXED = """\
@relation 'mixed'
@attribute protein string
@attribute f1 numeric
@attribute w1 {0,1}
@attribute colour {red,green,blue}
@attribute flag {YES,NO}
@attribute L1 {0,1}
@attribute L2 numeric
@data
'P1 a',0.5,1,green,NO,1,0
P2,-1,0,red,YES,0,1
P3,2,1,blue,NO,1,1
"""

# Column by column: f1, w1, colour=red, =green, =blue, flag=YES, =NO.
MIXED_FEATURES = [[0.5, 1, 0, 1, 0, 0, 1],
                  [-1, 0, 1, 0, 0, 1, 0],
                  [2, 1, 0, 0, 1, 0, 1]]
MIXED_ENCODING = {"one_hot": {"colour": {"column": 2, "values": ["red", "green", "blue"]},
                              "flag": {"column": 5, "values": ["YES", "NO"]}},
                  "dropped_string": ["protein"]}


def test_dense_nominal_and_string_attributes(tmp_path, capsys):
    path = _write(tmp_path, "mixed.arff", MIXED)
    data = _load(arff_train=path, num_labels=2)
    assert data.label_names == ["L1", "L2"] and data.feature_dim == 7
    features, labels = _features(data)
    np.testing.assert_array_equal(features, MIXED_FEATURES)
    assert labels == [[0], [1], [0, 1]]
    assert data.feature_encoding == MIXED_ENCODING

    out = tmp_path / "out"
    info = writer.write_dataset(data, str(out), source_name="arff", val_fraction=0,
                                progress=False)
    with open(out / schema.INFO_FILE) as f:
        assert json.load(f)["feature_encoding"] == MIXED_ENCODING
    assert schema.read_info(str(out)).feature_encoding == MIXED_ENCODING
    _, records = read_records(str(out), "train")
    by_id = {r["id"]: r for r in records}
    np.testing.assert_array_equal(by_id["train-000002"]["features"], MIXED_FEATURES[2])
    summary = make_tfrecords.summary(info, str(out))
    assert "one-hot features (2): colour (3 values), flag (2 values)" in summary
    assert "string attributes dropped (not features) (1): protein" in summary


def test_feature_encoding_is_left_out_when_empty(tmp_path):
    # Datasets whose features are one number per column keep the
    # dataset_info.json of earlier versions, and those files still read.
    path = _write(tmp_path, "plain.arff", "@relation p\n@attribute f1 numeric\n"
                  "@attribute w1 {0,1}\n@attribute L1 {0,1}\n@attribute L2 numeric\n"
                  "@data\n0.5,1,1,0\n-1,0,0,1\n")
    data = _load(arff_train=path, num_labels=2)
    assert data.feature_encoding == {} and data.feature_dim == 2
    out = tmp_path / "out"
    writer.write_dataset(data, str(out), progress=False)
    with open(out / schema.INFO_FILE) as f:
        assert "feature_encoding" not in json.load(f)
    assert schema.read_info(str(out)).feature_encoding == {}


SPARSE = """\
@relation sparse
@attribute x numeric
@attribute b {0,1}
@attribute c {NO,YES}
@attribute y numeric
@attribute id string
@attribute L1 {0,1}
@attribute L2 {0,1}
@data
{0 1, 3 2.5}
{1 1,2 YES,4 id7,6 1}
{}
{5 1, 6 1}
"""


def test_sparse_nominal_and_string_attributes(tmp_path):
    data = _load(arff_train=_write(tmp_path, "sparse.arff", SPARSE), num_labels=2)
    assert data.label_names == ["L1", "L2"] and data.feature_dim == 5
    features, labels = _features(data)
    # An omitted nominal value is its first declared one (Weka): c = NO.
    # Columns: x, b, c=NO, c=YES, y.
    np.testing.assert_array_equal(features, [[1, 0, 1, 0, 2.5],
                                             [0, 1, 0, 1, 0],
                                             [0, 0, 1, 0, 0],
                                             [0, 0, 1, 0, 0]])
    assert labels == [[], [1], [], [0, 1]]
    assert data.feature_encoding == {"one_hot": {"c": {"column": 2, "values": ["NO", "YES"]}},
                                     "dropped_string": ["id"]}


def test_meka_c_with_nominal_features(tmp_path):
    text = """\
@relation 'meka: -C 2'
@attribute A {0,1}
@attribute B numeric
@attribute w {0,1}
@attribute kind {x,y}
@data
1,0,1,y
0,1,0,x
"""
    data = _load(arff_train=_write(tmp_path, "meka.arff", text))
    assert data.label_names == ["A", "B"] and data.feature_dim == 3
    features, labels = _features(data)
    np.testing.assert_array_equal(features, [[1, 0, 1], [0, 1, 0]])
    assert labels == [[0], [1]]


MULAN_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="sky"></label>
<label name="animals"><label name="dog"/></label>
</labels>
"""

# Every attribute is {0,1} (corel5k, bibtex), and the labels need not be last.
ALL_BINARY = """\
@relation toy
@attribute blob1 {0,1}
@attribute sky {0,1}
@attribute blob2 {0,1}
@attribute animals {0,1}
@attribute dog {0,1}
@data
{0 1,1 1}
{2 1,3 1,4 1}
"""


def test_mulan_xml_names_the_labels(tmp_path):
    train = _write(tmp_path, "Toy-train-sparse.arff", ALL_BINARY)
    test = _write(tmp_path, "Toy-test-sparse.arff", ALL_BINARY.replace("{0 1,1 1}\n", ""))
    # Without the .xml nothing tells the features from the labels.
    with pytest.raises(SourceError, match=re.escape(train) + ": every attribute is "
                       r"\{0,1\}; pass --num_labels \(or put the dataset's MULAN .xml"):
        _load(arff_train=train)
    _write(tmp_path, "Toy.xml", MULAN_XML)
    # Another dataset's label file beside it is not taken.
    _write(tmp_path, "Other.xml", MULAN_XML.replace("sky", "nothing"))
    data = _load(arff_train=train, arff_test=test)
    assert data.label_names == ["sky", "animals", "dog"] and data.feature_dim == 2
    features, labels = _features(data, "train")
    np.testing.assert_array_equal(features, [[1, 0], [0, 1]])
    assert labels == [[0], [1, 2]]
    assert [i.labels for i in data.splits["test"]] == [[1, 2]]
    # --num_labels comes first.
    assert _load(arff_train=train, num_labels=1).label_names == ["dog"]
    # A label the .xml names must be an attribute.
    _write(tmp_path, "Toy.xml", MULAN_XML.replace("dog", "cat"))
    with pytest.raises(SourceError, match=re.escape(str(tmp_path / "Toy.xml"))
                       + r": labels \{cat\} are not attributes of " + re.escape(train)):
        _load(arff_train=train)
    _write(tmp_path, "Toy.xml", "<labels><label name='sky'>")
    with pytest.raises(SourceError, match=r"Toy.xml: not a MULAN label file \(.*line 1"):
        _load(arff_train=train)


HEADER = """\
@relation r
@attribute a numeric
@attribute b numeric
@attribute L1 {0,1}
@attribute L2 numeric
@data
"""


@pytest.mark.parametrize("text, match", [
    # liac-arff's own errors, with our file name and line.
    (HEADER.replace("b numeric", "b date"), r" line 3: unsupported attribute type "
     r"\(numeric, real, integer, string or \{nominal values\}; not date\): @attribute b date"),
    (HEADER.replace("attribute b", "attribute a"), r" line 3: attribute declared twice"),
    (HEADER + "1,2,0,1\n'unclosed,2,0,1\n", r" line 8: not ARFF here .*: 'unclosed,2,0,1"),
    (HEADER + "{0 1,2 1\n", r" line 7: not ARFF here"),
    (HEADER.replace("@relation r\n", "@attribute z numeric\n@relation r\n"),
     r" line 1: not ARFF here"),
    # mltf's checks of the values.
    (HEADER + "1,2,0,0.5\n", r" line 7: label 'L2' has '0.5'; expected 0 or 1"),
    (HEADER + "{0 1,3 2}\n", r" line 7: label 'L2' has '2'; expected 0 or 1"),
    (HEADER + "1,2,0,?\n", r" line 7: label 'L2' is missing \('\?'\); mltf needs complete "
     "labels"),
    (HEADER + "1,nan,0,1\n", r" line 7: feature 'b' has 'nan'; features must be finite"),
    (HEADER.replace("L1 {0,1}", "L1 {YES,NO}") + "1,2,YES,1\n",
     r" line 4: label attribute 'L1' \{YES,NO\} must be nominal \{0,1\} or numeric 0/1"),
    (HEADER.replace("L1 {0,1}", "L1 string") + "1,2,x,1\n",
     r" line 4: label attribute 'L1' string must be nominal \{0,1\}"),
    (HEADER.replace("b numeric", "b {p,q}") + "1,p,0,1\n1,?,0,1\n",
     r" line 8: feature 'b' is missing \('\?'\)"),
    (HEADER.replace("a numeric", "a string").replace("b numeric", "b string") + "x,y,0,1\n",
     r": no feature attribute is left besides the labels and the string attributes"),
])
def test_bad_files_name_file_and_line(tmp_path, text, match):
    path = _write(tmp_path, "bad.arff", text)
    with pytest.raises(SourceError, match=re.escape(path) + match):
        _load(arff_train=path, num_labels=2)


def test_long_value_lists_and_rows_are_cut(tmp_path):
    values = ",".join(f"v{i}" for i in range(3000))
    path = _write(tmp_path, "big.arff", HEADER.replace("L1 {0,1}", f"L1 {{{values}}}")
                  + "1,2,v7,1\n")
    with pytest.raises(SourceError) as e:
        _load(arff_train=path, num_labels=2)
    assert str(e.value) == (f"{path} line 4: label attribute 'L1' "
                            "{v0,v1,v2,v3,v4,... (3000 values)} must be nominal {0,1} or "
                            "numeric 0/1")
    # A bad row thousands of characters long (bibtex's are) is cut too.
    wide = "@relation w\n" + "".join(f"@attribute f{i} {{0,1}}\n" for i in range(2000)) \
        + "@attribute L numeric\n@data\n{" + ",".join(f"{i} 1" for i in range(2000)) \
        + ",2001 1}\n"
    path = _write(tmp_path, "wide.arff", wide)
    with pytest.raises(SourceError) as e:
        _load(arff_train=path, num_labels=1)
    assert str(e.value).startswith(f"{path} line 2004: the row does not fit the header")
    # 2,000 entries "i 1" (6,890 digits, 4,000 for " 1", 1,999 commas), "{", ",2001 1}".
    assert str(e.value).endswith("... (12898 characters)")
    assert len(str(e.value)) < len(path) + 250
    # Train and test files whose huge nominal attributes differ.
    train = _write(tmp_path, "t.arff", HEADER.replace("b numeric", f"b {{{values}}}")
                   + "1,v1,0,1\n")
    test = _write(tmp_path, "u.arff", HEADER.replace("b numeric", f"b {{{values},extra}}")
                  + "1,v1,0,1\n")
    with pytest.raises(SourceError) as e:
        _load(arff_train=train, arff_test=test, num_labels=2)
    assert str(e.value) == (
        f"{test} line 3: attribute 'b' {{v0,v1,v2,v3,v4,... (3001 values)}} differs from "
        f"{train} line 3: 'b' {{v0,v1,v2,v3,v4,... (3000 values)}}; the train and test "
        "files must declare the same attributes")


# ------------------------------------------------------------ real MULAN files

def _reference(path, num_features, num_labels):
    """Independent plain-Python reading of a sparse MULAN file whose values
    are all 1 where present: (label counts, features of row 0, rows)."""
    with open(path) as f:
        rows = [line.strip() for line in f.read().split("@data", 1)[1].splitlines()
                if line.strip() and not line.startswith("%")]
    counts = np.zeros(num_labels, int)
    first = np.zeros(num_features)
    for n, row in enumerate(rows):
        for entry in row.strip("{}").split(","):
            index, value = entry.split()
            assert value == "1"
            if int(index) >= num_features:
                counts[int(index) - num_features] += 1
            elif n == 0:
                first[int(index)] = 1
    return counts.tolist(), first, len(rows)


def _features_of(data_dir, info, split, key):
    """The features of record ``key``, parsed in batches (read_records parses
    one record at a time: minutes for bibtex on two cores)."""
    files = [os.path.join(data_dir, shard) for shard in info.splits[split].shards]
    spec = schema.feature_spec(info.kind, info.feature_dim)
    for batch in tf.data.TFRecordDataset(files).batch(1024).map(
            lambda raw: tf.io.parse_example(raw, spec)):
        ids = [i.decode() for i in batch[schema.KEY_ID].numpy()]
        if key in ids:
            return batch[schema.KEY_FEATURES].numpy()[ids.index(key)]
    raise KeyError(key)


def _xml_names(path):
    with open(path) as f:
        return re.findall(r'<label name="([^"]+)"', f.read())


@pytest.mark.parametrize("name, train, test, dims", [
    ("corel5k", "Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff", (499, 374)),
    # The same sparse nominal reader on a second file: behind -m slow (time).
    pytest.param("bibtex", "bibtex-train.arff", "bibtex-test.arff", (1836, 159),
                 marks=pytest.mark.slow),
])
def test_mulan_sparse_nominal_files_convert(shared_data, tmp_path, capsys, name, train, test,
                                            dims):
    folder = os.path.join(shared_data, "mulan", name)
    xml = [f for f in os.listdir(folder) if f.endswith(".xml")][0]
    out = tmp_path / name
    values = flags.FlagValues()
    names = make_tfrecords.define_flags(values)
    values(["make_tfrecords", "--source=arff", f"--arff_train={folder}/{train}",
            f"--arff_test={folder}/{test}", f"--output_dir={out}", "--noprogress"])
    assert make_tfrecords.main([], values, names) == 0
    assert f"kind: features, feature_dim: {dims[0]}, {dims[1]} labels" in capsys.readouterr().out
    info = schema.read_info(str(out))
    # No --num_labels: the labels are what the .xml beside the files names.
    assert info.label_names == _xml_names(os.path.join(folder, xml))
    assert info.feature_dim == dims[0] and info.feature_encoding == {}
    for split, file in (("train", train), ("test", test)):
        counts, first, n = _reference(os.path.join(folder, file), *dims)
        assert info.splits[split].num_examples == n
        assert info.splits[split].label_counts == counts
        np.testing.assert_array_equal(_features_of(str(out), info, split, f"{split}-000000"),
                                      first)
