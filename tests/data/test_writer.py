"""The record format, the writer's guarantees, the csv source and the CLI."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import read_records, write_corrupt, write_image
from mltf.data import schema, sources, writer
from mltf.data.sources import ALL, Item, SourceData, SourceError, SourceOptions

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _image_items(tmp_path, n=6):
    items = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.jpg"
        write_image(path, 16 + i, 20, seed=i)
        items.append(Item(key=f"{i}.jpg", labels=[i % 3, (i + 1) % 3] if i % 2 else [i % 3],
                          path=str(path)))
    return items


def test_schema_round_trip(tmp_path):
    items = _image_items(tmp_path)
    data = SourceData(label_names=["a", "b", "c"], splits={"train": items})
    info = writer.write_dataset(data, str(tmp_path / "out"), num_shards=2,
                                progress=False, source_name="unit")
    read, records = read_records(tmp_path / "out", "train")
    assert read == info
    assert len(records) == 6 and sorted(info.split("train").shards) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    by_id = {r["id"]: r for r in records}
    for item in items:
        rec = by_id[item.key]
        assert rec["labels"] == sorted(set(item.labels))
        with open(item.path, "rb") as f:
            assert rec["encoded"] == f.read()  # original bytes kept
        h, w = tf.io.decode_image(rec["encoded"]).shape[:2]
        assert (rec["height"], rec["width"]) == (h, w)
    # Statistics against a count made here from the items.
    counts = np.zeros(3, int)
    for item in items:
        counts[sorted(set(item.labels))] += 1
    split = info.split("train")
    assert split.label_counts == counts.tolist()
    assert split.label_cardinality == pytest.approx(counts.sum() / 6)
    labels = np.load(tmp_path / "out" / "train.labels.npy")
    assert labels.shape == (6, 3) and labels.sum() == counts.sum()
    on_disk = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert on_disk["num_labels"] == 3 and on_disk["label_names"] == ["a", "b", "c"]


def test_feature_records_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 4)).astype(np.float32)
    items = [Item(key=f"r{i}", labels=[i % 2], features=feats[i]) for i in range(5)]
    data = SourceData(["x", "y"], {"train": items}, kind="features", feature_dim=4)
    writer.write_dataset(data, str(tmp_path / "f"), progress=False)
    info, records = read_records(tmp_path / "f", "train")
    assert info.kind == "features" and info.feature_dim == 4
    for rec in records:
        i = int(rec["id"][1:])
        np.testing.assert_array_equal(rec["features"], feats[i])
        assert rec["labels"] == [i % 2]


def test_corrupt_images_are_skipped_and_reported(tmp_path):
    items = _image_items(tmp_path, 4)
    write_corrupt(tmp_path / "img" / "bad.jpg", "garbage")
    write_corrupt(tmp_path / "img" / "trunc.jpg", "truncated")
    (tmp_path / "img" / "empty.jpg").write_bytes(b"")
    items += [Item("bad.jpg", [0], path=str(tmp_path / "img" / "bad.jpg")),
              Item("trunc.jpg", [1], path=str(tmp_path / "img" / "trunc.jpg")),
              Item("empty.jpg", [1], path=str(tmp_path / "img" / "empty.jpg")),
              Item("missing.jpg", [2], path=str(tmp_path / "img" / "missing.jpg"))]
    info = writer.write_dataset(SourceData(["a", "b", "c"], {"train": items}),
                                str(tmp_path / "out"), progress=False)
    _, records = read_records(tmp_path / "out", "train")
    assert sorted(r["id"] for r in records) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert info.split("train").num_skipped == 4
    report = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert report[0] == "split\timage\treason"
    assert sorted(line.split("\t")[1] for line in report[1:]) == [
        "bad.jpg", "empty.jpg", "missing.jpg", "trunc.jpg"]


def test_all_inputs_bad_stops_with_message(tmp_path):
    write_corrupt(tmp_path / "bad.jpg")
    data = SourceData(["a"], {"train": [Item("bad.jpg", [0], path=str(tmp_path / "bad.jpg"))]})
    with pytest.raises(SourceError, match="all 1 inputs were skipped"):
        writer.write_dataset(data, str(tmp_path / "out"), progress=False)
    assert not any(n.endswith(".tfrecord") or n.endswith(".tmp") or n == "dataset_info.json"
                   for n in os.listdir(tmp_path / "out"))


def test_interrupt_leaves_no_shard(tmp_path, monkeypatch):
    items = _image_items(tmp_path, 6)
    calls = {"n": 0}
    original = writer._ImageEncoder.__call__

    def flaky(self, item):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, item)

    monkeypatch.setattr(writer._ImageEncoder, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        writer.write_dataset(SourceData(["a", "b", "c"], {"train": items}),
                             str(tmp_path / "out"), num_workers=1, progress=False)
    assert os.listdir(tmp_path / "out") == []


def test_resize_on_write_and_overwrite(tmp_path):
    items = _image_items(tmp_path, 3)
    data = SourceData(["a", "b", "c"], {"train": items})
    writer.write_dataset(data, str(tmp_path / "out"), resize="12x10", progress=False)
    _, records = read_records(tmp_path / "out", "train")
    for rec in records:
        assert tf.io.decode_jpeg(rec["encoded"]).shape == (12, 10, 3)
        assert (rec["height"], rec["width"]) == (12, 10)
    with pytest.raises(FileExistsError, match="--overwrite"):
        writer.write_dataset(data, str(tmp_path / "out"), progress=False)
    writer.write_dataset(data, str(tmp_path / "out"), overwrite=True, progress=False)


def test_seeded_split_and_deterministic_order(tmp_path):
    items = _image_items(tmp_path, 10)
    data = SourceData(["a", "b", "c"], {ALL: items})
    a = writer.write_dataset(data, str(tmp_path / "a"), val_fraction=0.3,
                             test_fraction=0.2, seed=3, num_workers=1, progress=False)
    writer.write_dataset(data, str(tmp_path / "b"), val_fraction=0.3,
                         test_fraction=0.2, seed=3, num_workers=2, progress=False)
    assert {k: v.num_examples for k, v in a.splits.items()} == {"train": 5, "val": 3, "test": 2}
    for split in a.splits:
        ra = [r["id"] for r in read_records(tmp_path / "a", split)[1]]
        rb = [r["id"] for r in read_records(tmp_path / "b", split)[1]]
        assert ra == rb
    ids = [r["id"] for s in a.splits for r in read_records(tmp_path / "a", s)[1]]
    assert sorted(ids) == sorted(i.key for i in items)
    c = writer.write_dataset(data, str(tmp_path / "c"), val_fraction=0.3,
                             test_fraction=0.2, seed=4, progress=False)
    assert [r["id"] for r in read_records(tmp_path / "c", "val")[1]] != [
        r["id"] for r in read_records(tmp_path / "a", "val")[1]]
    del c


def test_label_index_out_of_range(tmp_path):
    items = [Item("x", [5], features=np.zeros(2))]
    with pytest.raises(SourceError, match="label index 5"):
        writer.write_dataset(SourceData(["a"], {"train": items}, kind="features",
                                        feature_dim=2), str(tmp_path / "o"), progress=False)


# --- csv source -------------------------------------------------------------

def _csv_tree(tmp_path, text, n=4):
    for i in range(n):
        write_image(tmp_path / "images" / f"{i}.jpg", 16, 16, seed=i)
    (tmp_path / "labels.csv").write_text(text)
    return SourceOptions(csv=str(tmp_path / "labels.csv"))


_NAMES_CSV = "filename,labels\n0.jpg,sky sea\n1.jpg,sea;sand\n2.jpg,\n3.jpg,sand|sky\n"


@pytest.mark.parametrize("text, label_names, expected", [
    ("Filenames,sky,sea,sand\n0.jpg,1,0,0\n1.jpg,1,1,0\n2.jpg,0,1,1\n3.jpg,0,0,0\n",
     ["sky", "sea", "sand"], {"0.jpg": [0], "1.jpg": [0, 1], "2.jpg": [1, 2], "3.jpg": []}),
    (_NAMES_CSV,
     ["sand", "sea", "sky"], {"0.jpg": [1, 2], "1.jpg": [0, 1], "2.jpg": [], "3.jpg": [0, 2]}),
], ids=["zero_one_columns", "names_layout"])
def test_csv_layouts(tmp_path, text, label_names, expected):
    data = sources.load("csv", _csv_tree(tmp_path, text))
    assert data.label_names == label_names
    assert {i.key: sorted(i.labels) for i in data.splits[ALL]} == expected
    assert data.splits[ALL][0].path == str(tmp_path / "images" / "0.jpg")


def test_csv_names_layout_with_vocabulary(tmp_path):
    opts = _csv_tree(tmp_path, _NAMES_CSV)
    (tmp_path / "vocab.txt").write_text("sky\nsea\nsand\ngrass\n")
    opts.vocabulary = str(tmp_path / "vocab.txt")
    data = sources.load("csv", opts)
    assert data.label_names == ["sky", "sea", "sand", "grass"]
    assert {i.key: sorted(i.labels) for i in data.splits[ALL]}["0.jpg"] == [0, 1]


def test_csv_errors_name_the_problem(tmp_path):
    opts = _csv_tree(tmp_path, "filename,labels\n0.jpg,sky snow\n")
    (tmp_path / "vocab.txt").write_text("sky\nsea\n")
    opts.vocabulary = str(tmp_path / "vocab.txt")
    with pytest.raises(SourceError, match="'snow' is not in the vocabulary"):
        sources.load("csv", opts)
    opts = _csv_tree(tmp_path, "f,a,b\n0.jpg,1,2\n")
    with pytest.raises(SourceError, match="line 2: column 'b' has '2'"):
        sources.load("csv", opts)
    with pytest.raises(SourceError, match="nope.csv"):
        sources.load("csv", SourceOptions(csv=str(tmp_path / "nope.csv")))
    opts = _csv_tree(tmp_path, "f,a\n0.jpg,1\n0.jpg,0\n")
    with pytest.raises(SourceError, match="listed twice"):
        sources.load("csv", opts)
    with pytest.raises(SourceError, match="unknown source 'cvs'"):
        sources.load("cvs", opts)


def _run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_tfrecords.py"),
                           *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_csv_end_to_end(tmp_path):
    _csv_tree(tmp_path, "f,a,b\n0.jpg,1,0\n1.jpg,1,1\n2.jpg,0,1\n3.jpg,1,0\nx.jpg,1,1\n")
    write_corrupt(tmp_path / "images" / "x.jpg")
    out = tmp_path / "out"
    proc = _run_tool("--source=csv", f"--csv={tmp_path / 'labels.csv'}",
                     f"--output_dir={out}", "--val_fraction=0.25", "--noprogress")
    assert proc.returncode == 0, proc.stderr
    assert "skipped: 1" in proc.stdout and "skipped.txt" in proc.stdout
    info = schema.read_info(str(out))
    assert info.arguments["csv"] == str(tmp_path / "labels.csv")
    assert info.arguments["val_fraction"] == 0.25
    assert sum(s.num_examples for s in info.splits.values()) == 4
    # A second run without --overwrite refuses and keeps the dataset.
    proc = _run_tool("--source=csv", f"--csv={tmp_path / 'labels.csv'}",
                     f"--output_dir={out}", "--noprogress")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert schema.read_info(str(out)).splits == info.splits
    proc = _run_tool("--source=csv", f"--csv={tmp_path / 'missing.csv'}",
                     f"--output_dir={tmp_path / 'o2'}")
    assert proc.returncode == 2 and "missing.csv" in proc.stderr


def test_miml_scene_conversion(shared_data, tmp_path):
    """Converts the real MIML scene images; counts checked against labels.csv."""
    csv_path = os.path.join(shared_data, "miml-scene", "labels.csv")
    rows = np.loadtxt(csv_path, delimiter=",", skiprows=1, usecols=range(1, 6), dtype=int)
    data = sources.load("csv", SourceOptions(csv=csv_path))
    info = writer.write_dataset(data, str(tmp_path / "miml"), val_fraction=0.2,
                                seed=0, progress=False)
    assert info.label_names == ["desert", "mountains", "sea", "sunset", "trees"]
    assert {k: v.num_examples for k, v in info.splits.items()} == {"train": 1280, "val": 320}
    total = np.sum([info.splits[s].label_counts for s in info.splits], axis=0)
    np.testing.assert_array_equal(total, rows.sum(axis=0))
    for name, split in info.splits.items():
        labels = np.load(tmp_path / "miml" / split.labels_file)
        assert split.label_cardinality == pytest.approx(labels.sum() / len(labels))
    assert all(s.num_skipped == 0 for s in info.splits.values())
    # Per-label frequency of the split equals that of the file (seeded split).
    freq = rows.mean(axis=0)
    train_freq = np.array(info.splits["train"].label_counts) / 1280
    np.testing.assert_allclose(train_freq, freq, atol=0.03)


def test_failed_overwrite_keeps_previous_dataset(tmp_path, monkeypatch):
    items = _image_items(tmp_path, 4)
    data = SourceData(["a", "b", "c"], {"train": items})
    before = writer.write_dataset(data, str(tmp_path / "out"), progress=False)
    files = sorted(os.listdir(tmp_path / "out"))

    def boom(self, item):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer._ImageEncoder, "__call__", boom)
    with pytest.raises(KeyboardInterrupt):
        writer.write_dataset(data, str(tmp_path / "out"), overwrite=True, num_shards=3,
                             progress=False)
    assert sorted(os.listdir(tmp_path / "out")) == files
    assert schema.read_info(str(tmp_path / "out")).splits == before.splits


def test_duplicate_ids_are_rejected(tmp_path):
    items = [Item("x", [0], features=np.zeros(2)), Item("x", [0], features=np.ones(2))]
    with pytest.raises(SourceError, match="'x' appears twice"):
        writer.write_dataset(SourceData(["a"], {"train": items}, kind="features",
                                        feature_dim=2), str(tmp_path / "o"), progress=False)


def test_streamed_split_is_written_in_order_without_holding_it(tmp_path):
    class Lazy:
        """A split read on demand, like the tfds source's."""
        def __init__(self):
            self.made = 0

        def __len__(self):
            return 5

        def __iter__(self):
            for i in range(5):
                self.made += 1
                yield Item(f"s{i}", [i % 2], features=np.full(2, i, np.float32))

    lazy = Lazy()
    data = SourceData(["a", "b"], {"train": lazy}, kind="features", feature_dim=2)
    info = writer.write_dataset(data, str(tmp_path / "o"), num_shards=1, progress=False)
    assert lazy.made == 5 and info.split("train").num_examples == 5
    _, records = read_records(tmp_path / "o", "train")
    assert [r["id"] for r in records] == [f"s{i}" for i in range(5)]

    def dup():
        yield Item("d", [0], features=np.zeros(2))
        yield Item("d", [1], features=np.zeros(2))
    with pytest.raises(SourceError, match="'d' appears twice"):
        writer.write_dataset(SourceData(["a", "b"], {"train": dup()}, kind="features",
                                        feature_dim=2), str(tmp_path / "p"), progress=False)
    assert [n for n in os.listdir(tmp_path / "p")] == []
