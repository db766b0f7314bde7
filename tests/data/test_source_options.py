"""Sources declare their own options; make_tfrecords builds its flags from them."""

import dataclasses
import json
import os
import subprocess
import sys
import types
from typing import Optional

import numpy as np
import pytest
from absl import flags

from mltf.data import make_tfrecords, schema, sources
from mltf.data.sources import SharedOptions, SourceData, option

# Every flag of make_tfrecords as it was before the sources declared their
# options (written by the code of ee2bf8d), with the later additions marked:
# type, default, help, enum values.
FLAGS_BEFORE = {
    "source": ("string enum", None, "<coco|nuswide|mirflickr|voc|csv|arff|tfds|demo>: "
               "Which raw format to read.",
               ["coco", "nuswide", "mirflickr", "voc", "csv", "arff", "tfds", "demo"]),
    "output_dir": ("string", None, "Folder for the shards and dataset_info.json.", None),
    "num_shards": ("int", None, "Shards per split (default: one per 1,024 examples).", None),
    "val_fraction": ("float", 0.2, "Validation fraction, for sources without an official "
                     "split.", None),
    "test_fraction": ("float", 0.0, "Test fraction, for sources without an official split.",
                      None),
    "seed": ("int", 0, "Seed of the split, of the write order and of the demo data.", None),
    "split_method": ("string enum", "iterative", "<iterative|random>: How sources without an "
                     "official split are split: iterative (label-stratified) or random (the "
                     "split of mltf before 2026-12).", ["iterative", "random"]),
    "resize": ("string", None, "Resize images on write: N or HxW (e.g. 256). Default: keep "
               "the original bytes.", None),
    "jpeg_quality": ("int", 95, "JPEG quality when --resize re-encodes.", None),
    "num_workers": ("int", 0, "Threads reading and validating images (0: one per core).",
                    None),
    "overwrite": ("bool", False, "Replace a dataset already in --output_dir.", None),
    "progress": ("bool", True, "Show a progress bar.", None),
    "data_dir": ("string", None, "Root folder of the raw dataset (coco, nuswide, mirflickr, "
                 "voc).", None),
    "csv": ("string", None, "csv: the label file (filename,<label>,... with 0/1, or "
            "filename,labels with names).", None),
    "image_dir": ("string", None, "csv: image folder (default: <csv folder>/images if it "
                  "exists, else the csv folder).", None),
    "vocabulary": ("string", None, "csv: file with one label name per line; names outside "
                   "it are an error.", None),
    "arff_train": ("string", None, "arff: training ARFF file.", None),
    "arff_test": ("string", None, "arff: test ARFF file (optional).", None),
    # Since issue 15: the MULAN .xml rule, and --coco_splits.
    "num_labels": ("int", None, "arff: the last k attributes are the labels (default: MEKA's "
                   "-C, else the MULAN .xml beside the file, else the trailing {0,1} "
                   "attributes).", None),
    "coco_year": ("string", "2014", "coco: 2014 or 2017.", None),
    "coco_keep_empty": ("bool", False, "coco: keep images with no annotation (the papers "
                        "drop them).", None),
    "coco_splits": ("comma separated list of strings", None, "coco: splits to convert, of "
                    "train,val (default: those whose annotation file is there).", None),
    "voc_year": ("string", "2007", "voc: 2007 or 2012.", None),
    "voc_splits": ("comma separated list of strings", ["trainval", "test"],
                   "voc: ImageSets/Main splits to convert.", None),
    "voc_difficult": ("string enum", "negative", "<negative|positive|drop>: voc: how a label "
                      "marked difficult (0) counts.", ["negative", "positive", "drop"]),
    "nuswide_image_dir": ("string", None, "nuswide: image root (default: <data_dir>/Flickr).",
                          None),
    "tfds_name": ("string", None, "tfds: dataset name, e.g. voc/2007.", None),
    "tfds_data_dir": ("string", None, "tfds: where the prepared dataset lies (default: "
                      "~/tensorflow_datasets).", None),
    "tfds_splits": ("comma separated list of strings", None,
                    "tfds: splits to convert (default: all).", None),
    "tfds_image_key": ("string", "image", "tfds: image feature key.", None),
    "tfds_label_key": ("string", "labels", "tfds: label feature key; '/' for nested, e.g. "
                       "objects/label.", None),
    "demo_num_train": ("int", 2000, "demo: training images.", None),
    "demo_num_val": ("int", 500, "demo: validation images.", None),
    "demo_image_size": ("int", 64, "demo: image side in pixels.", None),
}


def _describe(flag_values):
    return {f.name: (f.flag_type(), f.default, f.help,
                     list(getattr(f.parser, "enum_values", None) or []) or None)
            for f in flag_values.flags_by_module_dict()[make_tfrecords.__name__]}


def test_flags_are_unchanged():
    values = flags.FlagValues()
    names = make_tfrecords.define_flags(values)
    assert sorted(names) == sorted(FLAGS_BEFORE)
    assert _describe(values) == FLAGS_BEFORE


def test_help_lists_every_flag():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(root, "tools", "make_tfrecords.py"),
                           "--helpfull"], capture_output=True, text=True, env=env, timeout=300)
    assert "mltf.data.make_tfrecords:" in proc.stdout, proc.stderr  # absl exits 1 after help
    for name in FLAGS_BEFORE:
        assert f"--{name}" in proc.stdout or f"--[no]{name}" in proc.stdout, name


def test_building_the_flags_imports_no_source_dependency():
    code = ("import sys; from absl import flags; from mltf.data import make_tfrecords; "
            "make_tfrecords.define_flags(flags.FlagValues()); "
            "print([m for m in ('pycocotools', 'tensorflow_datasets') if m in sys.modules])")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# A toy source, declared here only: its options become flags and it runs
# through the tool and the writer with no other file edited.
@dataclasses.dataclass(frozen=True)
class ToyOptions(SharedOptions):
    """Options of the toy source.

    Args:
      toy_count: how many feature vectors.
      toy_scale: their value.
      toy_shape: ``flat`` or ``steep``.
      toy_tag: an optional label name suffix.
    """
    toy_count: int = option("integer", 3, "feature vectors.")
    toy_scale: float = option("float", 1.5, "their value.")
    toy_shape: str = option("enum", "flat", "what they look like.",
                            choices=("flat", "steep"))
    toy_tag: Optional[str] = option("string", None, "label name suffix.")


def _toy_load(options: ToyOptions) -> SourceData:
    items = [sources.Item(key=f"toy-{i}", labels=[i % 2],
                          features=np.full(2, options.toy_scale * (i + 1), np.float32))
             for i in range(options.toy_count)]
    tag = options.toy_tag or ""
    return SourceData(label_names=["even" + tag, "odd" + tag],
                      splits={"train": items}, kind="features", feature_dim=2)


@pytest.fixture
def toy():
    sources.register_source("toy", types.SimpleNamespace(Options=ToyOptions,
                                                         load=_toy_load))
    yield
    sources.unregister_source("toy")


def test_a_registered_source_gets_flags_and_runs(toy, tmp_path, capsys):
    values = flags.FlagValues()
    names = make_tfrecords.define_flags(values)
    described = _describe(values)
    assert described["toy_count"] == ("int", 3, "toy: feature vectors.", None)
    assert described["toy_scale"] == ("float", 1.5, "toy: their value.", None)
    assert described["toy_shape"] == ("string enum", "flat",
                                      "<flat|steep>: toy: what they look like.",
                                      ["flat", "steep"])
    assert "toy" in values["source"].parser.enum_values
    out = tmp_path / "toy"
    values(["make_tfrecords", "--source=toy", f"--output_dir={out}", "--toy_count=5",
            "--toy_scale=2", "--toy_tag=_x", "--noprogress"])
    assert make_tfrecords.main([], values, names) == 0
    assert "toy" in capsys.readouterr().out
    info = schema.read_info(str(out))
    assert info.label_names == ["even_x", "odd_x"]
    assert info.splits["train"].num_examples == 5
    assert info.arguments["toy_count"] == 5 and info.arguments["toy_scale"] == 2.0
    with open(out / schema.INFO_FILE) as f:
        assert json.load(f)["arguments"]["toy_shape"] == "flat"


def test_load_takes_the_source_options_or_a_flat_set(toy):
    assert len(sources.load("toy").splits["train"]) == 3
    assert len(sources.load("toy", ToyOptions(toy_count=4)).splits["train"]) == 4
    flat = sources.SourceOptions(toy_count=2, csv="ignored.csv", seed=3)
    assert len(sources.load("toy", flat).splits["train"]) == 2
    with pytest.raises(TypeError, match="no source has an option 'toy_cuont'"):
        sources.load("toy", sources.SourceOptions(toy_cuont=2))
    with pytest.raises(TypeError, match="takes ToyOptions"):
        sources.load("toy", SharedOptions())


def test_two_sources_cannot_declare_one_option(toy):
    @dataclasses.dataclass(frozen=True)
    class Clash(SharedOptions):
        """A clash.

        Args:
          toy_count: already the toy source's.
        """
        toy_count: int = option("integer", 1, "clash.")

    sources.register_source("clash", types.SimpleNamespace(Options=Clash, load=_toy_load))
    try:
        with pytest.raises(ValueError, match="'toy_count', already declared by toy"):
            sources.option_specs()
        with pytest.raises(ValueError, match="already registered"):
            sources.register_source("toy", "x")
    finally:
        sources.unregister_source("clash")


def test_option_declarations_are_checked():
    with pytest.raises(ValueError, match="option kind"):
        option("text", None, "bad kind")
    with pytest.raises(ValueError, match="choices"):
        option("enum", "a", "no choices")
    with pytest.raises(ValueError, match="choices"):
        option("string", "a", "choices without enum", choices=("a",))
