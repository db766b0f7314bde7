"""The file-based sources (coco, nuswide, mirflickr, voc) on tiny fake trees.

Each test builds the dataset's on-disk layout in tmp_path with 16-24 px
images, runs the source through ``mltf.data.sources.load`` and
``write_dataset``, and compares the written ids and label sets with
hand-written expectations.
"""

import os

import pytest

from conftest import COCO_CATEGORIES, coco_json, coco_tree, read_records, write_image
from mltf.data import sources
from mltf.data.sources import SourceError, SourceOptions
from mltf.data.writer import write_dataset


def _written(out_dir, split_names):
    """dataset info and {split: {id: labels}} of what was written."""
    records = {}
    info = None
    for split in split_names:
        info, recs = read_records(out_dir, split)
        ids = [r["id"] for r in recs]
        assert len(ids) == len(set(ids)), f"duplicate ids in {split}: {ids}"
        records[split] = {r["id"]: r["labels"] for r in recs}
    return info, records


def _convert(name, options, out_dir):
    data = sources.load(name, options)
    info = write_dataset(data, str(out_dir), source_name=name, progress=False)
    assert set(info.splits) == set(data.splits) or set(data.splits) == {"all"}
    return data, info


def _write_lines(path, lines, newline="\n"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("".join(f"{line}{newline}" for line in lines))


# ----------------------------------------------------------------------- coco

def test_coco(tmp_path):
    root = coco_tree(tmp_path / "coco")
    data, info = _convert("coco", SourceOptions(data_dir=str(root)),
                          tmp_path / "out")
    assert data.label_names == ["person", "car", "toaster"]
    assert data.splits["train"][0].path == str(root / "train2014" / "b.jpg")
    info, got = _written(tmp_path / "out", ["train", "val"])
    assert info.label_names == ["person", "car", "toaster"]
    assert got == {"train": {"a.jpg": [0, 2], "b.jpg": [1], "d.jpg": [2]},
                   "val": {"v1.jpg": [1]}}
    assert info.dropped == {"train: no annotation": 1, "val: no annotation": 1}
    assert info.splits["train"].num_examples == 3
    assert info.splits["train"].label_counts == [1, 1, 2]
    assert info.splits["train"].num_empty == 0
    assert info.splits["val"].num_skipped == 0


def test_coco_keep_empty_and_2017(tmp_path):
    root = coco_tree(tmp_path / "coco", year="2017")
    options = SourceOptions(data_dir=str(root), coco_year="2017",
                            coco_keep_empty=True)
    _convert("coco", options, tmp_path / "out")
    info, got = _written(tmp_path / "out", ["train", "val"])
    assert got == {"train": {"a.jpg": [0, 2], "b.jpg": [1], "c.jpg": [],
                             "d.jpg": [2]},
                   "val": {"v1.jpg": [1], "v2.jpg": []}}
    assert info.dropped == {}
    assert info.splits["train"].num_empty == 1
    assert info.splits["val"].num_empty == 1


@pytest.mark.parametrize("missing", ["train", "val"])
def test_coco_missing_one_annotation_file(tmp_path, missing):
    root = coco_tree(tmp_path / "coco")
    os.remove(root / "annotations" / f"instances_{missing}2014.json")
    # Asked for by name, the missing split is an error naming its file.
    with pytest.raises(SourceError, match=f"COCO {missing} annotation file "
                       rf"\(--coco_splits\) not found: .*instances_{missing}2014.json"):
        sources.load("coco", SourceOptions(data_dir=str(root), coco_splits=["train", "val"]))


def test_coco_converts_the_split_that_is_there(tmp_path):
    root = coco_tree(tmp_path / "coco")
    os.remove(root / "annotations" / "instances_val2014.json")
    # The val image folder is not needed either once its split is not converted.
    for name in os.listdir(root / "val2014"):
        os.remove(root / "val2014" / name)
    os.rmdir(root / "val2014")
    data = sources.load("coco", SourceOptions(data_dir=str(root)))
    # One split: the converter's seeded split takes over, as for csv or arff.
    assert list(data.splits) == ["all"]
    assert data.dropped == {"train: no annotation": 1}
    assert {i.key: i.labels for i in data.splits["all"]} == {
        "a.jpg": [0, 2], "b.jpg": [1], "d.jpg": [2]}
    info = write_dataset(data, str(tmp_path / "out"), source_name="coco",
                         val_fraction=1 / 3, progress=False)
    assert {k: v.num_examples for k, v in info.splits.items()} == {"train": 2, "val": 1}
    # Named explicitly, the one split converts the same way.
    again = sources.load("coco", SourceOptions(data_dir=str(root), coco_splits=["train"]))
    assert [i.key for i in again.splits["all"]] == [i.key for i in data.splits["all"]]
    with pytest.raises(SourceError, match="--coco_splits: 'test' is not one of train, val"):
        sources.load("coco", SourceOptions(data_dir=str(root), coco_splits=["test"]))


def test_coco128(shared_data, tmp_path):
    """The real coco128 subset: train2017 only (128 images, 2 without objects)."""
    import json
    root = os.path.join(shared_data, "coco128")
    with open(os.path.join(root, "annotations", "instances_train2017.json")) as f:
        raw = json.load(f)
    # Independent reference: the label sets straight from the json.
    cat_ids = sorted(c["id"] for c in raw["categories"])
    name_of = {i["id"]: i["file_name"] for i in raw["images"]}
    expected = {}
    for ann in raw["annotations"]:
        expected.setdefault(name_of[ann["image_id"]], set()).add(cat_ids.index(ann["category_id"]))
    data = sources.load("coco", SourceOptions(data_dir=root, coco_year="2017"))
    assert len(data.label_names) == 80 and list(data.splits) == ["all"]
    assert data.dropped == {"train: no annotation": 2}
    assert {i.key: set(i.labels) for i in data.splits["all"]} == expected
    assert len(expected) == 126
    info = write_dataset(data, str(tmp_path / "coco128"), source_name="coco",
                         resize=64, progress=False)
    assert {k: v.num_examples for k, v in info.splits.items()} == {"train": 101, "val": 25}
    assert info.splits["train"].num_skipped == 0
    counts = [sum(i in labels for labels in expected.values()) for i in range(80)]
    assert [a + b for a, b in zip(info.splits["train"].label_counts,
                                  info.splits["val"].label_counts)] == counts
    assert sum(c > 0 for c in counts) == 71


def test_coco_errors(tmp_path):
    root = coco_tree(tmp_path / "coco")
    # No 2017 files at all: both looked for are named.
    with pytest.raises(SourceError, match="no COCO annotation file found: .*"
                       "instances_train2017.json and .*instances_val2017.json"):
        sources.load("coco", SourceOptions(data_dir=str(root), coco_year="2017"))
    with pytest.raises(SourceError, match="coco_year"):
        sources.load("coco", SourceOptions(data_dir=str(root), coco_year="2015"))
    # The splits must share the category list.
    coco_json(root / "annotations" / "instances_val2014.json",
               [(1, "v1.jpg")], [(1, 3, 0)],
               categories=COCO_CATEGORIES + [{"id": 9, "name": "boat"}])
    with pytest.raises(SourceError, match="different categories"):
        sources.load("coco", SourceOptions(data_dir=str(root)))
    # An annotation with an unknown category.
    coco_json(root / "annotations" / "instances_val2014.json",
               [(1, "v1.jpg")], [(1, 4, 0)])
    with pytest.raises(SourceError, match="category_id 4"):
        sources.load("coco", SourceOptions(data_dir=str(root)))
    # Not json.
    with open(root / "annotations" / "instances_val2014.json", "w") as f:
        f.write("{not json")
    with pytest.raises(SourceError, match="instances_val2014.json"):
        sources.load("coco", SourceOptions(data_dir=str(root)))


# -------------------------------------------------------------------- nuswide

NUS_CONCEPTS = ["animal", "sky", "water"]
# split -> [(path as listed, concepts)]
NUS_IMAGES = {
    "Train": [("actor\\0001_11.jpg", ["sky"]),
              ("beach\\0002_22.jpg", ["sky", "water"]),
              ("beach\\0003_33.jpg", []),          # dropped: no concept
              ("zoo\\0004_44.jpg", ["animal"])],
    "Test": [("zoo\\0005_55.jpg", ["animal", "water"]),
             ("actor\\0006_66.jpg", [])],          # dropped: no concept
}


def _nuswide_tree(root, image_dir=None):
    image_dir = image_dir or root / "Flickr"
    _write_lines(root / "Concepts81.txt", NUS_CONCEPTS)
    seed = 0
    for split, images in NUS_IMAGES.items():
        # The official lists have Windows line ends and backslashes.
        _write_lines(root / "ImageList" / f"{split}Imagelist.txt",
                     [p for p, _ in images], newline="\r\n")
        for concept in NUS_CONCEPTS:
            _write_lines(root / "Groundtruth" / "TrainTestLabels"
                         / f"Labels_{concept}_{split}.txt",
                         [1 if concept in c else 0 for _, c in images],
                         newline="\r\n")
        for path, _ in images:
            seed += 1
            write_image(os.path.join(image_dir, *path.split("\\")), 18, 22,
                        seed=seed)
    return root


def test_nuswide(tmp_path):
    root = _nuswide_tree(tmp_path / "nus")
    data, _ = _convert("nuswide", SourceOptions(data_dir=str(root)),
                       tmp_path / "out")
    assert data.splits["test"][0].path == os.path.join(
        str(root), "Flickr", "zoo", "0005_55.jpg")
    info, got = _written(tmp_path / "out", ["train", "test"])
    assert info.label_names == NUS_CONCEPTS
    assert got == {"train": {"actor/0001_11.jpg": [1],
                             "beach/0002_22.jpg": [1, 2],
                             "zoo/0004_44.jpg": [0]},
                   "test": {"zoo/0005_55.jpg": [0, 2]}}
    assert info.dropped == {"train: no concept": 1, "test: no concept": 1}
    assert info.splits["train"].label_counts == [1, 2, 1]
    assert info.splits["test"].num_examples == 1


def test_nuswide_image_dir(tmp_path):
    root = _nuswide_tree(tmp_path / "nus", image_dir=tmp_path / "elsewhere")
    with pytest.raises(SourceError, match="Flickr"):
        sources.load("nuswide", SourceOptions(data_dir=str(root)))
    options = SourceOptions(data_dir=str(root),
                            nuswide_image_dir=str(tmp_path / "elsewhere"))
    _convert("nuswide", options, tmp_path / "out")
    info, got = _written(tmp_path / "out", ["train", "test"])
    assert sorted(got["train"]) == ["actor/0001_11.jpg", "beach/0002_22.jpg",
                                    "zoo/0004_44.jpg"]
    assert info.splits["train"].num_skipped == 0


@pytest.mark.parametrize("relative", [
    "Concepts81.txt",
    "ImageList/TestImagelist.txt",
    "Groundtruth/TrainTestLabels/Labels_sky_Test.txt",
])
def test_nuswide_missing_file(tmp_path, relative):
    root = _nuswide_tree(tmp_path / "nus")
    os.remove(root / relative)
    with pytest.raises(SourceError, match=os.path.basename(relative)):
        sources.load("nuswide", SourceOptions(data_dir=str(root)))


def test_nuswide_label_file_length(tmp_path):
    root = _nuswide_tree(tmp_path / "nus")
    _write_lines(root / "Groundtruth" / "TrainTestLabels"
                 / "Labels_water_Train.txt", [0, 1, 0])  # the list has 4
    with pytest.raises(SourceError, match=r"Labels_water_Train.txt has 3 lines"):
        sources.load("nuswide", SourceOptions(data_dir=str(root)))
    _write_lines(root / "Groundtruth" / "TrainTestLabels"
                 / "Labels_water_Train.txt", [0, 1, 0, 2])
    with pytest.raises(SourceError, match=r"Labels_water_Train.txt line 4"):
        sources.load("nuswide", SourceOptions(data_dir=str(root)))


# ------------------------------------------------------------------ mirflickr

def _mirflickr_tree(root):
    for n in range(1, 7):
        write_image(root / "mirflickr" / f"im{n}.jpg", 16, 16 + n, seed=n)
    _write_lines(root / "mirflickr" / "license.txt", ["not an image"])
    ann = root / "mirflickr25k_annotations_v080"
    _write_lines(ann / "README.txt", ["MIRFLICKR annotations"])
    _write_lines(ann / "sky.txt", [1, 2, 6])
    _write_lines(ann / "sky_r1.txt", [1])
    _write_lines(ann / "dog.txt", [3])
    _write_lines(ann / "dog_r1.txt", [3])
    _write_lines(ann / "clouds.txt", [1, 4, ""])  # a trailing blank line
    return root


def test_mirflickr(tmp_path):
    root = _mirflickr_tree(tmp_path / "mir")
    data, _ = _convert("mirflickr", SourceOptions(data_dir=str(root)),
                       tmp_path / "out")
    assert list(data.splits) == ["all"]
    assert data.label_names == ["clouds", "dog", "sky"]
    info, got = _written(tmp_path / "out", ["train", "val"])
    assert set(info.splits) == {"train", "val"}
    merged = {**got["train"], **got["val"]}
    assert len(merged) == len(got["train"]) + len(got["val"])
    assert merged == {"im1.jpg": [0, 2], "im2.jpg": [2], "im3.jpg": [1],
                      "im4.jpg": [0], "im5.jpg": [], "im6.jpg": [2]}
    assert sum(s.num_empty for s in info.splits.values()) == 1
    assert info.dropped == {}


def test_mirflickr_errors(tmp_path):
    root = _mirflickr_tree(tmp_path / "mir")
    _write_lines(root / "mirflickr25k_annotations_v080" / "dog.txt", [3, 99])
    with pytest.raises(SourceError, match=r"dog\.txt: image number 99"):
        sources.load("mirflickr", SourceOptions(data_dir=str(root)))
    _write_lines(root / "mirflickr25k_annotations_v080" / "dog.txt", [3, "x"])
    with pytest.raises(SourceError, match=r"dog\.txt line 2"):
        sources.load("mirflickr", SourceOptions(data_dir=str(root)))
    os.rename(root / "mirflickr25k_annotations_v080", root / "annotations")
    with pytest.raises(SourceError, match="mirflickr25k_annotations_v080"):
        sources.load("mirflickr", SourceOptions(data_dir=str(root)))
    os.rename(root / "mirflickr", root / "images")
    with pytest.raises(SourceError, match="image folder.*mirflickr"):
        sources.load("mirflickr", SourceOptions(data_dir=str(root)))


# ------------------------------------------------------------------------ voc

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse",
               "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
# split -> image id -> {class: flag}; unnamed classes are -1.
VOC_FLAGS = {
    "trainval": {"000001": {"dog": 1, "person": 1},
                 "000002": {"cat": 1, "chair": 0},
                 "000003": {"bottle": 0}},
    "test": {"000004": {"tvmonitor": 1, "person": 1},
             "000005": {"aeroplane": 0, "bird": 1}},
}
AEROPLANE, BIRD, BOTTLE, CAT, CHAIR, DOG, PERSON, TV = 0, 2, 4, 7, 8, 11, 14, 19


def _voc_tree(devkit, year="2007"):
    root = devkit / f"VOC{year}"
    seed = 0
    for split, images in VOC_FLAGS.items():
        for name in VOC_CLASSES:
            # VOC pads a positive flag with an extra space.
            _write_lines(root / "ImageSets" / "Main" / f"{name}_{split}.txt",
                         [f"{i} {f:2d}" for i, f in
                          ((i, flags.get(name, -1)) for i, flags in images.items())])
        for image_id in images:
            seed += 1
            write_image(root / "JPEGImages" / f"{image_id}.jpg", 24, 18, seed=seed)
    return root


def test_voc_negative_from_devkit(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    _voc_tree(devkit)
    data, _ = _convert("voc", SourceOptions(data_dir=str(devkit)),
                       tmp_path / "out")
    assert data.label_names == VOC_CLASSES
    info, got = _written(tmp_path / "out", ["trainval", "test"])
    assert got == {"trainval": {"000001": [DOG, PERSON], "000002": [CAT],
                                "000003": []},
                   "test": {"000004": [PERSON, TV], "000005": [BIRD]}}
    assert info.splits["trainval"].num_empty == 1
    assert info.splits["test"].num_empty == 0
    assert info.dropped == {}


def test_voc_positive_from_year_folder(tmp_path):
    root = _voc_tree(tmp_path / "VOCdevkit")
    options = SourceOptions(data_dir=str(root), voc_difficult="positive")
    _convert("voc", options, tmp_path / "out")
    info, got = _written(tmp_path / "out", ["trainval", "test"])
    assert got == {"trainval": {"000001": [DOG, PERSON],
                                "000002": [CAT, CHAIR], "000003": [BOTTLE]},
                   "test": {"000004": [PERSON, TV],
                            "000005": [AEROPLANE, BIRD]}}
    assert info.splits["trainval"].num_empty == 0


def test_voc_drop_one_split(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    _voc_tree(devkit, year="2012")
    for mode, expected, dropped in [
            ("drop", {"000001": [DOG, PERSON]}, {"trainval: difficult label": 2}),
            ("negative", {"000001": [DOG, PERSON], "000002": [CAT],
                          "000003": []}, {})]:
        options = SourceOptions(data_dir=str(devkit), voc_year="2012",
                                voc_splits=["trainval"], voc_difficult=mode)
        _convert("voc", options, tmp_path / mode)
        info, got = _written(tmp_path / mode, ["trainval"])
        assert set(info.splits) == {"trainval"}
        assert got == {"trainval": expected}
        assert info.dropped == dropped


def test_voc_errors(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    root = _voc_tree(devkit)
    main = root / "ImageSets" / "Main"
    os.remove(main / "sheep_test.txt")
    with pytest.raises(SourceError, match="sheep_test.txt"):
        sources.load("voc", SourceOptions(data_dir=str(devkit)))
    # Only trainval asked for: the missing test file does not matter.
    data = sources.load("voc", SourceOptions(data_dir=str(devkit),
                                             voc_splits=["trainval"]))
    assert list(data.splits) == ["trainval"]
    with pytest.raises(SourceError, match="VOC2012"):
        sources.load("voc", SourceOptions(data_dir=str(devkit), voc_year="2012"))
    with pytest.raises(SourceError, match="voc_difficult"):
        sources.load("voc", SourceOptions(data_dir=str(devkit),
                                          voc_difficult="ignore"))
    _write_lines(main / "cow_trainval.txt", ["000001 -1", "000002 -1"])
    with pytest.raises(SourceError, match="cow_trainval.txt lacks image 000003"):
        sources.load("voc", SourceOptions(data_dir=str(devkit),
                                          voc_splits=["trainval"]))
    _write_lines(main / "cow_trainval.txt", ["000001 -1", "000002 2",
                                             "000003 -1"])
    with pytest.raises(SourceError, match="cow_trainval.txt line 2"):
        sources.load("voc", SourceOptions(data_dir=str(devkit),
                                          voc_splits=["trainval"]))
