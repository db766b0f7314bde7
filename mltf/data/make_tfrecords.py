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
  python tools/make_tfrecords.py --source=coco --data_dir=../shared/data/coco128 \
      --coco_year=2017 --output_dir=data/coco128

The record format and dataset_info.json are documented in mltf/data/schema.py
and in the README.
"""

import os
import sys

from absl import app, flags, logging

from mltf.data import sources

FLAGS = flags.FLAGS

_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "bool": flags.DEFINE_bool,
           "list": flags.DEFINE_list}


def define_flags(flag_values=FLAGS):
    """Defines the tool's flags, then one per option the sources declare
    (``mltf.data.sources.option_specs``), in ``flag_values``; returns their
    names in definition order. Defined in this module, so that --help lists
    them under it."""
    before = set(flag_values)
    fv = flag_values
    flags.DEFINE_enum("source", None, sources.names(), "Which raw format to read.", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Folder for the shards and dataset_info.json.",
                        flag_values=fv)
    flags.DEFINE_integer("num_shards", None,
                         "Shards per split (default: one per 1,024 examples).", flag_values=fv)
    flags.DEFINE_float("val_fraction", 0.2,
                       "Validation fraction, for sources without an official split.",
                       flag_values=fv)
    flags.DEFINE_float("test_fraction", 0.0,
                       "Test fraction, for sources without an official split.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the split, of the write order and of the demo data.",
                         flag_values=fv)
    flags.DEFINE_enum("split_method", "iterative", ["iterative", "random"],
                      "How sources without an official split are split: iterative "
                      "(label-stratified) or random (the split of mltf before 2026-12).",
                      flag_values=fv)
    flags.DEFINE_string("resize", None, "Resize images on write: N or HxW (e.g. 256). "
                        "Default: keep the original bytes.", flag_values=fv)
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality when --resize re-encodes.",
                         flag_values=fv)
    flags.DEFINE_integer("num_workers", 0,
                         "Threads reading and validating images (0: one per core).",
                         flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --output_dir.",
                      flag_values=fv)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", flag_values=fv)
    for spec in sources.option_specs():
        if spec.kind == "enum":
            flags.DEFINE_enum(spec.name, spec.default, list(spec.choices), spec.help,
                              flag_values=fv)
        else:
            _DEFINE[spec.kind](spec.name, spec.default, spec.help, flag_values=fv)
    return [name for name in flag_values if name not in before]


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
    one_hot = info.feature_encoding.get("one_hot", {})
    if one_hot:
        lines.append(f"  one-hot features ({len(one_hot)}): " + ", ".join(
            f"{name} ({len(e['values'])} values)" for name, e in list(one_hot.items())[:5])
            + (", ..." if len(one_hot) > 5 else ""))
    strings = info.feature_encoding.get("dropped_string", [])
    if strings:
        lines.append(f"  string attributes dropped (not features) ({len(strings)}): "
                     + ", ".join(strings[:5]) + (", ..." if len(strings) > 5 else ""))
    if info.skipped_report:
        lines.append("  unreadable inputs are listed in "
                     + os.path.join(output_dir, info.skipped_report))
    return "\n".join(lines)


def main(argv, values, flag_names):
    """Converts as the parsed flags say; returns the exit status.

    Args:
      argv: unused (absl's positional arguments).
      values: the parsed flags (a FlagValues), defined by ``define_flags``.
      flag_names: what ``define_flags`` returned.
    """
    del argv
    from mltf.data import writer
    if not values.source or not values.output_dir:
        raise app.UsageError("--source and --output_dir are required")
    # Every option of this tool, defaults included, so the run can be redone.
    arguments = {name: values[name].value for name in flag_names
                 if values[name].value is not None}
    source_names = {s.name for s in sources.option_specs()} | {"seed"}
    options = sources.SourceOptions(**{
        name: value for name, value in arguments.items() if name in source_names})
    try:
        data = sources.load(values.source, options)
        info = writer.write_dataset(
            data, values.output_dir, source_name=values.source,
            arguments=arguments, num_shards=values.num_shards,
            val_fraction=values.val_fraction, test_fraction=values.test_fraction,
            seed=values.seed, split_method=values.split_method, resize=values.resize,
            jpeg_quality=values.jpeg_quality, num_workers=values.num_workers,
            overwrite=values.overwrite, progress=values.progress)
    except (sources.SourceError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"make_tfrecords: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make_tfrecords: interrupted; no partial shard was left behind",
              file=sys.stderr)
        return 130
    print(summary(info, values.output_dir))
    return 0


def run():
    """Console-script entry point. The flags are defined here, not on import,
    so that importing this module leaves the global FLAGS alone."""
    logging.set_verbosity(logging.WARNING)
    names = define_flags()
    app.run(lambda argv: sys.exit(main(argv, FLAGS, names)))


if __name__ == "__main__":
    run()
