"""Writes a source's items as sharded TFRecords plus ``dataset_info.json``.

This is the only code that writes mltf records: ``tools/make_tfrecords.py``
and the tests both call ``write_dataset``.

Guarantees:
- A corrupt, truncated, missing or non-image file is skipped, counted and
  listed (with the reason) in ``skipped.txt``; every good image is written.
- Shards are written under temporary names (``.<name>.tmp``) and renamed only
  when every shard of the conversion is complete, and ``dataset_info.json`` is
  written last: a folder is a dataset only once it exists. A crash or Ctrl-C
  removes the temporary files, so a folder never holds a half-written shard
  that looks complete; with ``overwrite`` the previous dataset stays intact
  until the new one is complete.
- Output is deterministic: items are shuffled with ``seed`` and dealt to
  shards round-robin, whatever ``num_workers`` is.
"""

import collections
import concurrent.futures
import datetime
import glob
import math
import os
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mltf.utils import imageio, sizes
from mltf.data import schema
from mltf.data import splits as data_splits
from mltf.data.sources.base import ALL, Item, SourceData, SourceError

# One shard per this many examples when --num_shards is not given: about
# 100-150 MB for full-size COCO JPEGs, which tf.data reads efficiently.
EXAMPLES_PER_SHARD = 1024


class _Skip(Exception):
    pass


def split_items(items: Sequence[Item], val_fraction: float,
                test_fraction: float, seed: int,
                method: str = "iterative") -> Dict[str, List[Item]]:
    """Seeded train/val(/test) split of a source without one.

    Args:
      items: the source's items.
      val_fraction, test_fraction: the shares of val and test.
      seed: the split's seed.
      method: ``"iterative"`` (label-stratified: every label's share in each
        part as close to the part's size as the counts allow,
        ``mltf.data.splits``) or ``"random"`` (a seeded shuffle, the split of
        datasets written before the option existed).
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or (
            val_fraction + test_fraction >= 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1) "
                         f"and sum below 1; got {val_fraction}, {test_fraction}")
    if method != "random":
        return _stratified_split(items, val_fraction, test_fraction, seed, method)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = len(items)
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    out = {"train": [items[i] for i in order[n_val + n_test:]]}
    if n_val:
        out["val"] = [items[i] for i in order[:n_val]]
    if n_test:
        out["test"] = [items[i] for i in order[n_val:n_val + n_test]]
    return out


def _stratified_split(items, val_fraction, test_fraction, seed, method):
    """``split_items`` by ``data_splits.holdout_mask``: val and test together
    first, then test out of them."""
    num_labels = 1 + max((int(i) for item in items for i in item.labels), default=0)
    labels = schema.multi_hot_np([item.labels for item in items], num_labels)
    held = data_splits.holdout_mask(labels, val_fraction + test_fraction, seed, method)
    test = np.zeros(len(items), bool)
    if test_fraction and held.any():
        share = test_fraction / (val_fraction + test_fraction)
        test[np.flatnonzero(held)[data_splits.holdout_mask(labels[held], share, seed + 1,
                                                       method)]] = True
    out = {"train": [item for item, h in zip(items, held) if not h]}
    for name, mask in (("val", held & ~test), ("test", test)):
        if mask.any():
            out[name] = [item for item, m in zip(items, mask) if m]
    return out


parse_resize = sizes.optional_hw


class _ImageEncoder:
    """Reads, validates and optionally resizes one image (thread-safe)."""

    def __init__(self, resize: Optional[Tuple[int, int]], jpeg_quality: int):
        self.resize = resize
        self.jpeg_quality = jpeg_quality

    def __call__(self, item: Item) -> Tuple[bytes, int, int]:
        if item.array is not None:
            array = np.asarray(item.array)
            if array.ndim == 2:
                array = array[..., None]
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
                raise _Skip(f"array must be uint8 HxWx1 or HxWx3, got "
                            f"{array.dtype} {array.shape}")
            data = tf.io.encode_png(array).numpy()
        elif item.data is not None:
            data = item.data
        else:
            data = None
        try:
            if item.array is None and item.data is None:
                data = imageio.read_file(item.path)
            if not data:
                raise imageio.ImageReadError("empty file")
            image = imageio.decode(data)
        except imageio.ImageReadError as e:
            raise _Skip(str(e)) from None
        height, width = int(image.shape[0]), int(image.shape[1])
        if height == 0 or width == 0:
            raise _Skip("image has zero size")
        if self.resize is not None and (height, width) != self.resize:
            resized = tf.image.resize(image, self.resize, antialias=True)
            resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
            data = tf.io.encode_jpeg(resized, quality=self.jpeg_quality).numpy()
            height, width = self.resize
        return data, height, width


def _encode_features(item: Item, feature_dim: int) -> bytes:
    features = np.asarray(item.features, np.float32).ravel()
    if features.shape[0] != feature_dim:
        raise _Skip(f"feature vector has length {features.shape[0]}, "
                    f"expected {feature_dim}")
    if not np.all(np.isfinite(features)):
        raise _Skip("feature vector has NaN or infinite values")
    return schema.encode_feature_example(item.key, item.labels, features)


class _ShardSet:
    """Open writers for one split's shards, under temporary names."""

    def __init__(self, output_dir: str, split: str, num_shards: int):
        self.names = [schema.shard_name(split, i, num_shards)
                      for i in range(num_shards)]
        self.final = [os.path.join(output_dir, n) for n in self.names]
        self.temp = [os.path.join(output_dir, f".{n}.tmp") for n in self.names]
        self.writers = [tf.io.TFRecordWriter(p) for p in self.temp]

    def write(self, index: int, record: bytes):
        self.writers[index % len(self.writers)].write(record)

    def close(self):
        for w in self.writers:
            w.close()

    def commit(self):
        for tmp, final in zip(self.temp, self.final):
            os.replace(tmp, final)

    def discard(self):
        self.close()
        for tmp in self.temp:
            if os.path.exists(tmp):
                os.remove(tmp)


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        enabled = False
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True,
                mininterval=0.5)


def _check_existing(output_dir: str, overwrite: bool):
    info_path = os.path.join(output_dir, schema.INFO_FILE)
    old = glob.glob(os.path.join(output_dir, "*.tfrecord"))
    if (old or os.path.exists(info_path)) and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a dataset; pass --overwrite to "
            "replace it, or choose another --output_dir")


def _remove_old(output_dir: str, keep: set):
    """Removes a previous dataset's files, except the names in ``keep``.
    dataset_info.json goes first, so the folder never looks complete."""
    info_path = os.path.join(output_dir, schema.INFO_FILE)
    if os.path.exists(info_path):
        os.remove(info_path)
    old = (glob.glob(os.path.join(output_dir, "*.tfrecord"))
           + glob.glob(os.path.join(output_dir, "*.labels.npy"))
           + [os.path.join(output_dir, schema.SKIPPED_FILE)])
    for path in old:
        if os.path.exists(path) and os.path.basename(path) not in keep:
            os.remove(path)


def _maybe_len(items) -> Optional[int]:
    try:
        return len(items)
    except TypeError:
        return None


def write_dataset(source: SourceData, output_dir: str, *,
                  source_name: str = "",
                  arguments: Optional[Dict] = None,
                  num_shards: Optional[int] = None,
                  val_fraction: float = 0.2,
                  test_fraction: float = 0.0,
                  seed: int = 0,
                  split_method: str = "iterative",
                  resize=None,
                  jpeg_quality: int = 95,
                  num_workers: int = 0,
                  overwrite: bool = False,
                  progress: bool = True) -> schema.DatasetInfo:
    """Writes ``source`` to ``output_dir`` and returns its ``DatasetInfo``.

    A split given as a list is shuffled (seeded) before writing; a split
    given as any other iterable (a generator, a lazy reader with ``__len__``
    for the progress bar) is streamed in its own order, so a large source
    never holds all its images in memory.

    Args:
      source: what a source module returned.
      output_dir: folder for shards and ``dataset_info.json`` (created).
      source_name, arguments: recorded in ``dataset_info.json``.
      num_shards: shards per split; by default one per 1,024 examples.
      val_fraction, test_fraction, seed: the seeded split used when the source
        has none (one split named ``all``); ``seed`` also fixes the order in
        which examples are written.
      split_method: that split's method, ``"iterative"`` (label-stratified)
        or ``"random"`` (see ``split_items``).
      resize: ``None`` keeps the original bytes; ``N`` or ``(H, W)`` resizes
        (antialiased) and re-encodes as JPEG of ``jpeg_quality``.
      num_workers: threads that read and validate images (0: one per core).
      overwrite: replace a dataset already in ``output_dir``.
      progress: show a progress bar per split.
    """
    splits = dict(source.splits)
    if ALL in splits:
        if len(splits) > 1:
            raise SourceError(f"a source returns either one split {ALL!r} or "
                              f"named splits, not both: {sorted(splits)}")
        splits = split_items(list(splits[ALL]), val_fraction, test_fraction, seed,
                             split_method)
    # An empty list is a split with nothing in it: leave it out.
    splits = {k: v for k, v in splits.items() if _maybe_len(v) != 0}
    if not splits:
        raise SourceError(f"the {source_name or 'source'} source produced no "
                          "examples: check the input paths and label files")
    num_labels = len(source.label_names)
    if num_labels == 0:
        raise SourceError("the source has no labels")
    resize = parse_resize(resize)
    if source.kind == schema.KIND_FEATURES:
        if not source.feature_dim:
            raise SourceError("a feature source must set feature_dim")
    elif source.kind != schema.KIND_IMAGE:
        raise SourceError(f"unknown kind {source.kind!r}")
    os.makedirs(output_dir, exist_ok=True)
    _check_existing(output_dir, overwrite)

    encoder = _ImageEncoder(resize, jpeg_quality)
    workers = num_workers or os.cpu_count() or 1
    shard_sets: Dict[str, _ShardSet] = {}
    split_infos: Dict[str, schema.SplitInfo] = {}
    labels_per_split: Dict[str, np.ndarray] = {}
    skipped: List[Tuple[str, str, str]] = []

    def encode(item: Item) -> bytes:
        if source.kind == schema.KIND_FEATURES:
            return _encode_features(item, source.feature_dim)
        data, height, width = encoder(item)
        return schema.encode_image_example(item.key, item.labels, data,
                                           height, width)

    def safe_encode(item: Item):
        try:
            return encode(item), None
        except _Skip as e:
            return None, str(e)

    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for split, items in splits.items():
                if isinstance(items, (list, tuple)):
                    items = list(items)
                    random.Random(f"{seed}/{split}").shuffle(items)
                total = _maybe_len(items)
                n_shards = num_shards or max(1, math.ceil((total or 0) / EXAMPLES_PER_SHARD))
                if total is not None:
                    n_shards = max(1, min(n_shards, total))
                shards = _ShardSet(output_dir, split, n_shards)
                shard_sets[split] = shards
                written_labels = []
                bar = _progress(total, split, progress)
                keys = set()

                def checked(it):
                    for item in it:
                        if item.key in keys:
                            raise SourceError(f"{split}: image id {item.key!r} appears twice")
                        keys.add(item.key)
                        bad = [i for i in item.labels if not 0 <= int(i) < num_labels]
                        if bad:
                            raise SourceError(f"{split}/{item.key}: label index "
                                              f"{bad[0]} outside 0..{num_labels - 1}")
                        yield item

                # A bounded window keeps memory flat on large datasets while the
                # pool works ahead; results are consumed in item order.
                window = collections.deque()
                it = checked(items)
                for item in it:
                    window.append((item, pool.submit(safe_encode, item)))
                    if len(window) >= 4 * workers:
                        break
                while window:
                    item, future = window.popleft()
                    nxt = next(it, None)
                    if nxt is not None:
                        window.append((nxt, pool.submit(safe_encode, nxt)))
                    record, reason = future.result()
                    if record is None:
                        skipped.append((split, item.key, reason))
                    else:
                        shards.write(len(written_labels), record)
                        written_labels.append(sorted(set(int(i) for i in item.labels)))
                    if bar is not None:
                        bar.update(1)
                        if skipped:
                            bar.set_postfix(skipped=len(skipped), refresh=False)
                if bar is not None:
                    bar.close()
                shards.close()
                labels = schema.multi_hot_np(written_labels, num_labels)
                labels_per_split[split] = labels
                n = len(written_labels)
                split_infos[split] = schema.SplitInfo(
                    num_examples=n,
                    shards=shards.names,
                    label_counts=[int(c) for c in labels.sum(axis=0)],
                    label_cardinality=float(labels.sum() / n) if n else 0.0,
                    num_empty=int((labels.sum(axis=1) == 0).sum()),
                    num_skipped=sum(1 for s in skipped if s[0] == split),
                    labels_file=schema.labels_file_name(split))
        total = sum(s.num_examples for s in split_infos.values())
        if total == 0:
            examples = "; ".join(f"{k}: {r}" for _, k, r in skipped[:3])
            raise SourceError(
                f"no example could be written: all {len(skipped)} inputs were "
                f"skipped (e.g. {examples})")
    except BaseException:
        for shards in shard_sets.values():
            shards.discard()
        raise

    # Only now, with every new shard complete, does the old dataset go.
    _remove_old(output_dir, keep={n for s in shard_sets.values() for n in s.names})
    for shards in shard_sets.values():
        shards.commit()
    for split, labels in labels_per_split.items():
        np.save(os.path.join(output_dir, schema.labels_file_name(split)), labels)
    report = None
    if skipped:
        report = schema.SKIPPED_FILE
        with open(os.path.join(output_dir, report), "w") as f:
            f.write("split\timage\treason\n")
            for row in skipped:
                f.write("\t".join(row) + "\n")
    info = schema.DatasetInfo(
        kind=source.kind,
        label_names=list(source.label_names),
        splits=split_infos,
        source=source_name,
        arguments=dict(arguments or {}),
        dropped=dict(source.dropped),
        feature_encoding=dict(source.feature_encoding),
        feature_dim=source.feature_dim,
        skipped_report=report,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"))
    schema.write_json_atomic(os.path.join(output_dir, schema.INFO_FILE),
                             info.to_json())
    return info
