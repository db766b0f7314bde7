"""Seeded splits of multi-label data that keep every label in every part.

A random split of a dataset with rare labels can leave a label out of the
smaller part, and then nothing chosen on that part (a threshold, an epoch)
sees it. Iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML
PKDD 2011), here through the ``iterative-stratification`` package, deals the
examples so that each label's share in each part is as close as possible to
the part's size, rarest labels first.

``holdout_mask`` is the one place a split is drawn: the trainer carves its
selection split from the training split with it, and the converter
(``mltf.data.writer.split_items``) its val/test splits.
"""

import time
from typing import Tuple

import numpy as np
import tensorflow as tf

from mltf.data import schema

METHODS = ("iterative", "random")


def holdout_mask(labels, fraction: float, seed: int = 0,
                 method: str = "iterative") -> np.ndarray:
    """Which rows go to the held-out part: a bool ``[N]`` with
    ``round(N * fraction)`` True entries (at least one when ``fraction > 0``
    and N > 1).

    Args:
        labels: multi-hot ``[N, C]``.
        fraction: the held-out share, in ``[0, 1)``.
        seed: the draw's seed (the same seed and labels give the same rows).
        method: ``"iterative"`` (label-stratified) or ``"random"``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [N, C], got shape {labels.shape}")
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    if method not in METHODS:
        raise ValueError(f"split method must be one of {METHODS}, got {method!r}")
    n = labels.shape[0]
    mask = np.zeros(n, bool)
    count = min(max(int(round(n * fraction)), 1 if fraction > 0 else 0), n - 1)
    if count <= 0:
        return mask
    if method == "random":
        mask[np.random.default_rng(seed).permutation(n)[:count]] = True
        return mask
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=count,
                                                random_state=seed)
    _, held_out = next(splitter.split(np.zeros((n, 1)), (labels > 0).astype(int)))
    mask[held_out] = True
    # The package can miss the asked size by a few examples; trim or fill at
    # random so the size is exact, never trimming a label's last example.
    rng = np.random.default_rng(seed)
    positive = labels > 0
    for _ in range(int(mask.sum()) - count):
        counts = positive[mask].sum(axis=0)
        rows = np.flatnonzero(mask)
        # Rows none of whose labels would be left without a held-out example.
        safe = rows[~(positive[rows] & (counts < 2)).any(axis=1)]
        mask[rng.choice(safe if len(safe) else rows)] = False
    if mask.sum() < count:
        mask[rng.choice(np.flatnonzero(~mask), count - int(mask.sum()), replace=False)] = True
    return mask


def read_ids_and_labels(data_dir: str, split: str,
                        info: schema.DatasetInfo = None) -> Tuple[np.ndarray, np.ndarray]:
    """The ids (``[N]`` of str) and multi-hot labels (``[N, C]`` uint8) of
    every record of ``split``, read from the records themselves (no image is
    decoded), in shard order.

    Args:
        data_dir: an mltf dataset folder.
        split: the split to read.
        info: its ``DatasetInfo`` (read when None).
    """
    info = info or schema.read_info(data_dir)
    paths = [tf.io.gfile.join(data_dir, s) for s in info.split(split).shards]
    spec = {schema.KEY_ID: tf.io.FixedLenFeature([], tf.string),
            schema.KEY_LABELS: tf.io.VarLenFeature(tf.int64)}
    num_labels = info.num_labels

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        return ex[schema.KEY_ID], schema.multi_hot(ex[schema.KEY_LABELS].values, num_labels)

    start = time.time()
    ds = tf.data.TFRecordDataset(paths).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    ids, labels = [], []
    for id_batch, label_batch in ds.batch(4096).as_numpy_iterator():
        ids.extend(i.decode("utf-8") for i in id_batch)
        labels.append(label_batch.astype(np.uint8))
    labels = (np.concatenate(labels) if labels
              else np.zeros((0, num_labels), np.uint8))
    seconds = time.time() - start
    if seconds > 5:
        print(f"read the ids and labels of {len(ids):,} {split} records in {seconds:.0f} s",
              flush=True)
    return np.asarray(ids, dtype=object), labels
