"""mltf.data.splits: the held-out mask (size, seed, label stratification) and
reading a split's ids and labels back from its records."""

import numpy as np
import pytest

from mltf.data import splits, writer
from mltf.data.sources.base import Item, SourceData


def rare_labels(n=600, c=12, seed=0):
    """Labels whose frequencies run from about 2 % to 40 %."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.02, 0.4, c)
    return (rng.random((n, c)) < rates).astype(np.uint8)


@pytest.mark.parametrize("method", splits.METHODS)
def test_holdout_size_and_seed(method):
    y = rare_labels()
    mask = splits.holdout_mask(y, 0.1, seed=4, method=method)
    assert mask.dtype == bool and mask.sum() == 60
    np.testing.assert_array_equal(mask, splits.holdout_mask(y, 0.1, seed=4, method=method))
    assert not np.array_equal(mask, splits.holdout_mask(y, 0.1, seed=5, method=method))
    assert not splits.holdout_mask(y, 0.0, method=method).any()
    assert splits.holdout_mask(y[:3], 0.01, method=method).sum() == 1  # never empty


def _worst_share_gap(y, mask):
    """Largest |held-out positives - fraction x positives| over labels."""
    fraction = mask.mean()
    return np.abs(y[mask].sum(axis=0) - fraction * y.sum(axis=0)).max()


def test_iterative_keeps_each_labels_share_where_random_does_not():
    gaps = {m: [] for m in splits.METHODS}
    for seed in range(5):
        y = rare_labels(seed=seed)
        for method in splits.METHODS:
            gaps[method].append(_worst_share_gap(y, splits.holdout_mask(y, 0.2, seed, method)))
    # Iterative stratification: every label within three examples of its
    # share; a random draw misses by several on these sizes.
    assert max(gaps["iterative"]) <= 3
    assert np.mean(gaps["random"]) > 2 * np.mean(gaps["iterative"])


def test_bad_arguments_are_refused():
    y = rare_labels(20, 3)
    for fraction in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            splits.holdout_mask(y, fraction)
    with pytest.raises(ValueError, match="iterative"):
        splits.holdout_mask(y, 0.1, method="kfold")
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        splits.holdout_mask(y[0], 0.1)


def test_ids_and_labels_read_back_from_the_records(tmp_path):
    y = rare_labels(50, 4, seed=1)
    items = [Item(key=f"img-{i:03d}", labels=list(np.flatnonzero(row)),
                  features=np.full(3, i, np.float32)) for i, row in enumerate(y)]
    source = SourceData(label_names=list("abcd"), splits={"train": items},
                        kind="features", feature_dim=3)
    writer.write_dataset(source, str(tmp_path), num_shards=3, progress=False)
    ids, labels = splits.read_ids_and_labels(str(tmp_path), "train")
    assert sorted(ids) == [item.key for item in items]
    by_id = {f"img-{i:03d}": row for i, row in enumerate(y)}
    np.testing.assert_array_equal(labels, np.stack([by_id[i] for i in ids]))
    assert labels.dtype == np.uint8


def _all_split_source(y):
    items = [Item(key=f"x{i:04d}", labels=list(np.flatnonzero(row)),
                  features=np.zeros(2, np.float32)) for i, row in enumerate(y)]
    return SourceData(label_names=[f"l{j}" for j in range(y.shape[1])],
                      splits={"all": items}, kind="features", feature_dim=2)


def test_converter_split_keeps_every_label_in_val(tmp_path):
    """The converter's seeded split of a source without one is stratified by
    default: each label with at least 1 / val_fraction examples is in both
    parts (a random split loses some of the rare ones)."""
    y = rare_labels(400, 30, seed=2)
    y[:, 25:] = 0
    for j in range(25, 30):  # five labels with 5..9 examples
        y[np.random.default_rng(j).choice(400, j - 20, replace=False), j] = 1
    missing = {m: 0 for m in splits.METHODS}
    for seed in range(4):
        for method in splits.METHODS:
            info = writer.write_dataset(_all_split_source(y), str(tmp_path / f"{method}{seed}"),
                                        val_fraction=0.2, seed=seed, split_method=method,
                                        progress=False)
            val = np.asarray(info.split("val").label_counts)
            train = np.asarray(info.split("train").label_counts)
            assert train.sum() + val.sum() == y.sum()
            assert info.split("val").num_examples == 80
            eligible = y.sum(axis=0) >= 5
            missing[method] += int(((val == 0) & eligible).sum())
    assert missing["iterative"] == 0
    assert missing["random"] > 0
