r"""Converts a raw multi-label dataset to mltf TFRecords.

Examples:
  python tools/make_tfrecords.py --source=demo --output_dir=data/demo
  python tools/make_tfrecords.py --source=csv \
      --csv=../shared/data/miml-scene/labels.csv --output_dir=data/miml_scene
  python tools/make_tfrecords.py --source=coco --data_dir=/data/coco \
      --coco_year=2014 --resize=256 --output_dir=data/coco2014
  python tools/make_tfrecords.py --source=arff \
      --arff_train=scene-train.arff --arff_test=scene-test.arff \
      --num_labels=6 --output_dir=data/mulan_scene

The record format and dataset_info.json are documented in mltf/data/schema.py
and in the README.
"""

import dataclasses
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS

flags.DEFINE_enum("source", None, ["coco", "nuswide", "mirflickr", "voc", "csv",
                                   "arff", "tfds", "demo"],
                  "Which raw format to read.")
flags.DEFINE_string("output_dir", None, "Folder for the shards and dataset_info.json.")
flags.DEFINE_integer("num_shards", None, "Shards per split (default: one per 1,024 examples).")
flags.DEFINE_float("val_fraction", 0.2, "Validation fraction, for sources without an official split.")
flags.DEFINE_float("test_fraction", 0.0, "Test fraction, for sources without an official split.")
flags.DEFINE_integer("seed", 0, "Seed of the split, of the write order and of the demo data.")
flags.DEFINE_string("resize", None, "Resize images on write: N or HxW (e.g. 256). Default: keep the original bytes.")
flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality when --resize re-encodes.")
flags.DEFINE_integer("num_workers", 0, "Threads reading and validating images (0: one per core).")
flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --output_dir.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
# Source options: see mltf.data.sources.base.SourceOptions.
flags.DEFINE_string("data_dir", None, "Root folder of the raw dataset (coco, nuswide, mirflickr, voc).")
flags.DEFINE_string("csv", None, "csv: the label file (filename,<label>,... with 0/1, or filename,labels with names).")
flags.DEFINE_string("image_dir", None, "csv: image folder (default: <csv folder>/images if it exists, else the csv folder).")
flags.DEFINE_string("vocabulary", None, "csv: file with one label name per line; names outside it are an error.")
flags.DEFINE_string("arff_train", None, "arff: training ARFF file.")
flags.DEFINE_string("arff_test", None, "arff: test ARFF file (optional).")
flags.DEFINE_integer("num_labels", None, "arff: the last k attributes are the labels (default: the trailing {0,1} attributes).")
flags.DEFINE_string("coco_year", "2014", "coco: 2014 or 2017.")
flags.DEFINE_bool("coco_keep_empty", False, "coco: keep images with no annotation (the papers drop them).")
flags.DEFINE_string("voc_year", "2007", "voc: 2007 or 2012.")
flags.DEFINE_list("voc_splits", ["trainval", "test"], "voc: ImageSets/Main splits to convert.")
flags.DEFINE_enum("voc_difficult", "negative", ["negative", "positive", "drop"],
                  "voc: how a label marked difficult (0) counts.")
flags.DEFINE_string("nuswide_image_dir", None, "nuswide: image root (default: <data_dir>/Flickr).")
flags.DEFINE_string("tfds_name", None, "tfds: dataset name, e.g. voc/2007.")
flags.DEFINE_string("tfds_data_dir", None, "tfds: where the prepared dataset lies (default: ~/tensorflow_datasets).")
flags.DEFINE_list("tfds_splits", None, "tfds: splits to convert (default: all).")
flags.DEFINE_string("tfds_image_key", "image", "tfds: image feature key.")
flags.DEFINE_string("tfds_label_key", "labels", "tfds: label feature key; '/' for nested, e.g. objects/label.")
flags.DEFINE_integer("demo_num_train", 2000, "demo: training images.")
flags.DEFINE_integer("demo_num_val", 500, "demo: validation images.")
flags.DEFINE_integer("demo_image_size", 64, "demo: image side in pixels.")


def _options():
    from mltf.data.sources.base import SourceOptions
    values = {}
    for field in dataclasses.fields(SourceOptions):
        if field.name in FLAGS and FLAGS[field.name].value is not None:
            values[field.name] = FLAGS[field.name].value
    return SourceOptions(**values)


def summary(info, output_dir) -> str:
    """A human-readable summary of a written dataset."""
    lines = [f"dataset: {output_dir}  (source: {info.source}, kind: {info.kind}"
             + (f", feature_dim: {info.feature_dim}" if info.feature_dim else "")
             + f", {info.num_labels} labels)"]
    for name, split in info.splits.items():
        lines.append(f"  {name:<6} {split.num_examples:>7} examples in "
                     f"{len(split.shards)} shard(s), label cardinality "
                     f"{split.label_cardinality:.3f}, no label: {split.num_empty}, "
                     f"skipped: {split.num_skipped}")
    width = max(len(n) for n in info.label_names)
    header = "  " + "label".ljust(width) + "".join(f"{s:>9}" for s in info.splits)
    lines.append(header)
    for i, name in enumerate(info.label_names):
        lines.append("  " + name.ljust(width) + "".join(
            f"{s.label_counts[i]:>9}" for s in info.splits.values()))
    for reason, count in info.dropped.items():
        lines.append(f"  dropped by the source ({reason}): {count}")
    if info.skipped_report:
        lines.append("  unreadable inputs are listed in "
                     + os.path.join(output_dir, info.skipped_report))
    return "\n".join(lines)


def main(argv):
    del argv
    from mltf.data import sources, writer
    if not FLAGS.source or not FLAGS.output_dir:
        raise app.UsageError("--source and --output_dir are required")
    options = _options()
    # Every option of this tool, defaults included, so the run can be redone.
    arguments = {f.name: f.value
                 for f in FLAGS.flags_by_module_dict().get(__name__, [])
                 if f.value is not None}
    try:
        data = sources.load(FLAGS.source, options)
        info = writer.write_dataset(
            data, FLAGS.output_dir, source_name=FLAGS.source,
            arguments=arguments, num_shards=FLAGS.num_shards,
            val_fraction=FLAGS.val_fraction, test_fraction=FLAGS.test_fraction,
            seed=FLAGS.seed, resize=FLAGS.resize,
            jpeg_quality=FLAGS.jpeg_quality, num_workers=FLAGS.num_workers,
            overwrite=FLAGS.overwrite, progress=FLAGS.progress)
    except (sources.SourceError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"make_tfrecords: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make_tfrecords: interrupted; no partial shard was left behind",
              file=sys.stderr)
        return 130
    print(summary(info, FLAGS.output_dir))
    return 0


def run():
    """Console-script entry point."""
    logging.set_verbosity(logging.WARNING)
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
