"""tf.data input pipelines over mltf TFRecord datasets.

Stages, in order: list shards, (shard across workers), interleave the shard
readers, shuffle, repeat, then one ``map`` that parses, decodes and augments
each record, batch (``drop_remainder`` for training), batch-level stages
(Keras preprocessing layers, per-backbone scaling, then the config's
``batch_transforms``), prefetch. Every parallel stage uses AUTOTUNE.

Parse, decode and augment are separate functions but run in one ``map``:
one parallel map over the three is cheaper than three maps handing tensors
to each other, and in training the decode is cut to the five-crop patch's
window (``augment.random_five_crop_encoded``), which needs both at once.

Elements: ``(images, labels)`` with images float32 [B, H, W, 3] (or
features float32 [B, D] for feature datasets) and labels float32 multi-hot
[B, C]. With ``batch_transforms`` (a method's extra inputs, e.g. WGAN-gp's
mismatched label sets) the first element is a dict ``{"images": ..., <the
transforms' keys>}``; with ``with_ids=True`` it is a dict that also holds
``"ids"`` (the records' ``image/id``). The pipeline knows no method: a
transform is any callable ``transform(config) -> fn(x, labels, seed) -> x``
(``x`` the dict of model inputs, ``seed`` a stateless int64 seed [2]).

Determinism: random draws are stateless and keyed on ``seed`` and the
element's position, so ``deterministic=True`` gives the same batches on every
run whatever the parallelism. Training defaults to non-deterministic order
(faster); evaluation is always in file order.
"""

import dataclasses
import os
from typing import Optional, Sequence, Union

import tensorflow as tf

from mltf.data import schema
from pipelines import augment, preprocessing

AUTOTUNE = tf.data.AUTOTUNE


def model_input(x):
    """The model's input in an element's ``x``: ``x`` itself, or the
    ``"images"`` (image datasets) or ``"features"`` (feature datasets) entry
    when ``x`` is a dict with extras (a method's inputs, ids)."""
    if isinstance(x, dict):
        return x["images"] if "images" in x else x["features"]
    return x


@dataclasses.dataclass
class InputConfig:
    """How to read one split of an mltf dataset.

    Args:
      data_dir: folder written by tools/make_tfrecords.py.
      split: split name (``train``, ``val``, ``test``).
      batch_size: global batch size (split across replicas by
        ``distributed_dataset``).
      training: five-crop augmentation, shuffling, repeating and
        ``drop_remainder``; otherwise resize only, one pass, file order.
      image_size: the model's input size (N or (H, W)); 224 in the papers.
      resize_size: the size the five-crop recipe first resizes to (256).
      crop_sizes: patch sides, in ``resize_size`` pixels.
      max_distort: 0 for square patches; see ``augment.random_five_crop``.
      flip: random horizontal flip in training.
      preprocessing: a mode or backbone name (``pipelines.preprocessing``).
      augmentation_layers: Keras preprocessing layers (or callables on a
        batch) applied to training batches, e.g. ``keras.layers.RandomContrast``
        or a keras-cv layer.
      shuffle_buffer: examples in the shuffle buffer.
      cycle_length: shards read at once (default: min(shards, 8)).
      deterministic: fix the order and the random draws (default: False in
        training, always True in evaluation).
      seed: seed of the shuffle and of the augmentation draws.
      repeat: repeat forever (default: in training).
      batch_transforms: callables ``transform(config) -> fn(x, labels,
        seed) -> x`` applied in order to each batch's input dict, made once
        per input pipeline (a method sets them: WGAN-gp's mismatched label
        sets, ``mltf.methods.wgan_gp.MismatchedLabels``).
      with_ids: add the records' ids (for prediction and evaluation files).
      cache: cache parsed records in memory (small datasets).
      keep_ids: when set, only the records with these ids are read (the
        trainer's selection split, carved from the training split).
      drop_ids: records with these ids are skipped (the training split
        without its selection part).
    """
    data_dir: str
    split: str = "train"
    batch_size: int = 32
    training: bool = True
    image_size: Union[int, Sequence[int]] = 224
    resize_size: Union[int, Sequence[int]] = 256
    crop_sizes: Sequence[int] = augment.CROP_SIZES
    max_distort: int = 0
    flip: bool = True
    preprocessing: str = "none"
    augmentation_layers: Sequence = ()
    shuffle_buffer: int = 2048
    cycle_length: Optional[int] = None
    deterministic: Optional[bool] = None
    seed: int = 0
    repeat: Optional[bool] = None
    batch_transforms: Sequence = ()
    with_ids: bool = False
    cache: bool = False
    keep_ids: Optional[Sequence[str]] = None
    drop_ids: Optional[Sequence[str]] = None


def _shard_paths(config: InputConfig, info: schema.DatasetInfo):
    split = info.split(config.split)
    paths = [os.path.join(config.data_dir, s) for s in split.shards]
    missing = [p for p in paths if not tf.io.gfile.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]} is listed in dataset_info.json but missing "
            f"({len(missing)} of {len(paths)} shards missing)")
    return paths


def parse_fn(info: schema.DatasetInfo):
    """Serialized record -> dict of raw tensors (image bytes or features)."""
    spec = schema.feature_spec(info.kind, info.feature_dim)
    num_labels = info.num_labels

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, spec)
        out = {"ids": ex[schema.KEY_ID],
               "labels": schema.multi_hot(ex[schema.KEY_LABELS].values, num_labels)}
        if info.kind == schema.KIND_IMAGE:
            out["encoded"] = ex[schema.KEY_IMAGE]
            out["height"] = ex[schema.KEY_HEIGHT]
            out["width"] = ex[schema.KEY_WIDTH]
        else:
            out["features"] = ex[schema.KEY_FEATURES]
        return out

    return parse


def make_dataset(config: InputConfig, input_context: Optional[tf.distribute.InputContext] = None,
                 info: Optional[schema.DatasetInfo] = None) -> tf.data.Dataset:
    """Builds the ``tf.data.Dataset`` for ``config``.

    Under ``tf.distribute``, pass the ``input_context`` that
    ``distribute_datasets_from_function`` gives: the dataset is then sharded
    across input pipelines and batched per replica.
    """
    info = info or schema.read_info(config.data_dir)
    paths = _shard_paths(config, info)
    training = config.training
    deterministic = bool(config.deterministic) if training else True
    repeat = training if config.repeat is None else config.repeat
    batch_size = config.batch_size
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(config.batch_size)
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {config.batch_size}")

    files = tf.data.Dataset.from_tensor_slices(paths)
    shard_files = num_pipelines > 1 and len(paths) >= num_pipelines
    if shard_files:
        files = files.shard(num_pipelines, pipeline_id)
    if training:
        files = files.shuffle(len(paths), seed=config.seed,
                              reshuffle_each_iteration=True)
    cycle = config.cycle_length or min(len(paths), 8)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle,
                          num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if num_pipelines > 1 and not shard_files:
        # Fewer shards than workers: every worker reads all, keeps its share.
        ds = ds.shard(num_pipelines, pipeline_id)
    id_filter = _id_filter(config)
    if id_filter is not None:  # before the shuffle and repeat, so counts hold
        ds = ds.filter(id_filter)
    parse = parse_fn(info)
    if config.cache:
        ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic).cache()
        parse = None
    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed,
                        reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # Each element's position keys its random draws (stateless, reproducible).
    ds = ds.enumerate()
    element_fn = _element_fn(config, info, parse, pipeline_id)
    ds = ds.map(element_fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=training,
                  num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = _batch_stages(ds, config, info, pipeline_id, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    if input_context is not None:
        # Sharding is done above; stop tf.distribute from sharding again.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
    return ds.with_options(options).prefetch(AUTOTUNE)


def _id_filter(config: InputConfig):
    """A predicate on serialized records from ``keep_ids`` / ``drop_ids``
    (None when neither is set); it parses only the id."""
    if config.keep_ids is not None and config.drop_ids is not None:
        raise ValueError("set keep_ids or drop_ids, not both")
    ids = config.keep_ids if config.keep_ids is not None else config.drop_ids
    if ids is None:
        return None
    keep = config.keep_ids is not None
    keys, values = (list(ids), [1] * len(ids)) if len(ids) else ([""], [0])
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                            tf.constant(values, tf.int32)),
        default_value=0)
    spec = {schema.KEY_ID: tf.io.FixedLenFeature([], tf.string)}

    def listed(record):
        found = table.lookup(tf.io.parse_single_example(record, spec)[schema.KEY_ID]) > 0
        return found if keep else tf.logical_not(found)

    return listed


def num_read(config: InputConfig, num_examples: int) -> int:
    """How many of a split's ``num_examples`` records ``config`` reads (its
    ``keep_ids`` / ``drop_ids`` name records of that split)."""
    if config.keep_ids is not None:
        return len(config.keep_ids)
    return num_examples - len(config.drop_ids or ())


def _element_fn(config: InputConfig, info: schema.DatasetInfo, parse, pipeline_id):
    is_image = info.kind == schema.KIND_IMAGE
    image_size = augment.as_hw(config.image_size)

    def fn(index, record):
        ex = parse(record) if parse is not None else record
        out = {"ids": ex["ids"], "labels": ex["labels"]}
        if not is_image:
            out["inputs"] = ex["features"]
            return out
        if config.training:
            seed = tf.stack([tf.cast(config.seed, tf.int64) * 1000003 + pipeline_id,
                             tf.cast(index, tf.int64)])
            # Decodes only the patch (JPEG) using the stored height and width.
            image = augment.random_five_crop_encoded(
                ex["encoded"], ex["height"], ex["width"], seed,
                output_size=image_size, resize_size=config.resize_size,
                crop_sizes=config.crop_sizes, max_distort=config.max_distort,
                flip=config.flip)
        else:
            image = augment.eval_resize(augment.decode(ex["encoded"]), image_size)
        out["inputs"] = image
        return out

    return fn


def _batch_stages(ds, config: InputConfig, info, pipeline_id, deterministic):
    is_image = info.kind == schema.KIND_IMAGE
    transforms = [make(config) for make in config.batch_transforms]
    layers = tuple(config.augmentation_layers or ()) if config.training else ()
    mode = preprocessing.mode_for(config.preprocessing) if is_image else "none"

    def fn(batch_index, batch):
        inputs = batch["inputs"]
        if layers:
            inputs = augment.apply_layers(inputs, layers)
        if mode != "none":
            inputs = preprocessing.preprocess(inputs, mode)
        x = {"images" if is_image else "features": inputs}
        for i, transform in enumerate(transforms):
            seed = tf.stack([tf.cast(config.seed, tf.int64) * 7919 + pipeline_id + 1
                             + 104729 * i, tf.cast(batch_index, tf.int64)])
            x = transform(x, batch["labels"], seed)
        if config.with_ids:
            x["ids"] = batch["ids"]
        if len(x) == 1:
            x = inputs
        return x, batch["labels"]

    return ds.enumerate().map(fn, num_parallel_calls=AUTOTUNE,
                              deterministic=deterministic)


def check_global_batch(global_batch: int, replicas: int) -> None:
    """A global batch must split evenly over the replicas in sync."""
    if global_batch % replicas:
        raise ValueError(
            f"the global batch size {global_batch} must divide by the {replicas} "
            f"replicas in sync; use a multiple of {replicas}")


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches in one pass over ``num_examples`` (at least 1)."""
    return max(1, num_examples // batch_size)


def distributed_dataset(strategy: tf.distribute.Strategy, config: InputConfig):
    """Per-replica batches for ``strategy`` via
    ``distribute_datasets_from_function``; ``config.batch_size`` is global."""
    check_global_batch(config.batch_size, strategy.num_replicas_in_sync)
    info = schema.read_info(config.data_dir)
    return strategy.distribute_datasets_from_function(
        lambda ctx: make_dataset(config, ctx, info))
