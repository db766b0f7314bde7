"""The tf.data pipeline end to end, the mismatched-label sampler, tf.distribute."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import keras

from conftest import mirrored_strategy, write_image
from mltf.data import writer
from mltf.data.sources import Item, SourceData
import mltf.backbones  # noqa: F401  (backbone names as preprocessing modes)
from mltf.methods.wgan_gp import MismatchSampler, MismatchedLabels
from pipelines import InputConfig, make_dataset, distributed_dataset

LABELS = ["a", "b", "c", "d"]


def _label_sets(n):
    # A fixed, varied pattern: some sets repeat, one image has no label.
    pattern = [[0], [0, 1], [2], [1, 3], [0, 1], [], [3], [0, 2, 3]]
    return [pattern[i % len(pattern)] for i in range(n)]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    sets = _label_sets(24)
    items = []
    for i, labels in enumerate(sets):
        path = root / "img" / f"{i:02d}.jpg"
        write_image(path, 20 + (i % 3) * 7, 30 - (i % 4) * 3, seed=i)
        items.append(Item(f"{i:02d}.jpg", labels, path=str(path)))
    data = SourceData(LABELS, {"train": items[:18], "val": items[18:]})
    writer.write_dataset(data, str(root / "ds"), num_shards=3, progress=False)
    return str(root / "ds"), {f"{i:02d}.jpg": s for i, s in enumerate(sets)}


def _multi_hot(sets):
    out = np.zeros((len(sets), len(LABELS)), np.float32)
    for r, s in enumerate(sets):
        out[r, s] = 1
    return out


def test_training_batches_shapes_dtypes(tiny_dataset):
    data_dir, _ = tiny_dataset
    cfg = InputConfig(data_dir, "train", batch_size=4, image_size=32, resize_size=48,
                      crop_sizes=(48, 40, 32, 24), preprocessing="inception_v3")
    ds = make_dataset(cfg)
    assert ds.element_spec[0].shape.as_list() == [4, 32, 32, 3]
    assert ds.element_spec[1].shape.as_list() == [4, 4]
    for images, labels in ds.take(10):  # repeats past the 18 examples
        assert images.dtype == tf.float32 and labels.dtype == tf.float32
        assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
        assert set(np.unique(labels.numpy())) <= {0.0, 1.0}


def test_eval_is_one_ordered_pass_with_exact_labels(tiny_dataset):
    data_dir, truth = tiny_dataset
    cfg = InputConfig(data_dir, "val", batch_size=4, training=False, image_size=16,
                      with_ids=True)
    seen = []
    sizes = []
    for x, labels in make_dataset(cfg):
        sizes.append(labels.shape[0])
        assert x["images"].shape[1:] == (16, 16, 3)
        for i, y in zip(x["ids"].numpy(), labels.numpy()):
            seen.append(i.decode())
            np.testing.assert_array_equal(y, _multi_hot([truth[i.decode()]])[0])
    assert sizes == [4, 2]  # the remainder is kept in evaluation
    assert sorted(seen) == sorted(f"{i:02d}.jpg" for i in range(18, 24))
    again = [i.decode() for x, _ in make_dataset(cfg) for i in x["ids"].numpy()]
    assert again == seen


def test_deterministic_when_asked(tiny_dataset):
    data_dir, _ = tiny_dataset
    cfg = InputConfig(data_dir, "train", batch_size=3, image_size=16, resize_size=32,
                      crop_sizes=(32, 24, 16), deterministic=True, seed=5)

    def run():
        return [(x.numpy(), y.numpy()) for x, y in make_dataset(cfg).take(8)]
    a, b = run(), run()
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    cfg.seed = 6
    c = run()
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_training_covers_every_example_each_epoch(tiny_dataset):
    data_dir, truth = tiny_dataset
    cfg = InputConfig(data_dir, "train", batch_size=6, image_size=8, resize_size=16,
                      crop_sizes=(16,), with_ids=True, repeat=False)
    ids = [i.decode() for x, _ in make_dataset(cfg) for i in x["ids"].numpy()]
    assert sorted(ids) == sorted(f"{i:02d}.jpg" for i in range(18))


def test_keras_layers_and_mismatched_labels_in_pipeline(tiny_dataset):
    data_dir, _ = tiny_dataset
    cfg = InputConfig(data_dir, "train", batch_size=6, image_size=16, resize_size=32,
                      crop_sizes=(32, 16), batch_transforms=(MismatchedLabels(),),
                      augmentation_layers=[keras.layers.RandomContrast(0.2, seed=0)])
    x, y = next(iter(make_dataset(cfg)))
    assert x["images"].shape == (6, 16, 16, 3)
    m = x["mismatched_labels"].numpy()
    assert m.shape == y.shape
    assert np.all(np.any(m != y.numpy(), axis=1))


def test_feature_dataset(tmp_path):
    feats = np.arange(30, dtype=np.float32).reshape(10, 3)
    items = [Item(f"r{i}", [i % 2], features=feats[i]) for i in range(10)]
    writer.write_dataset(SourceData(["x", "y"], {"train": items}, kind="features",
                                    feature_dim=3), str(tmp_path / "f"), progress=False)
    cfg = InputConfig(str(tmp_path / "f"), "train", batch_size=10, training=False,
                      with_ids=True)
    x, y = next(iter(make_dataset(cfg)))
    for i, f, lab in zip(x["ids"].numpy(), x["features"].numpy(), y.numpy()):
        k = int(i.decode()[1:])
        np.testing.assert_array_equal(f, feats[k])
        assert lab.tolist() == [float(k % 2 == 0), float(k % 2 == 1)]


# --- mismatched label sets ----------------------------------------------------

def test_mismatch_never_returns_own_set_and_follows_frequencies():
    sets = [[0]] * 50 + [[1]] * 30 + [[0, 1]] * 20
    sampler = MismatchSampler(_multi_hot(sets)[:, :2])
    query = tf.constant(_multi_hot([[0]] * 4000)[:, :2])
    drawn = sampler.sample(query, tf.constant([1, 2])).numpy()
    keys = collections.Counter(tuple(r) for r in drawn)
    assert (1.0, 0.0) not in keys  # the own set {0}
    # Other images: 30 with {1}, 20 with {0, 1} -> 0.6 / 0.4.
    assert keys[(0.0, 1.0)] / 4000 == pytest.approx(0.6, abs=0.03)
    assert keys[(1.0, 1.0)] / 4000 == pytest.approx(0.4, abs=0.03)


def test_mismatch_unseen_set_draws_from_all_and_single_set_returns_itself():
    sampler = MismatchSampler(_multi_hot([[0]] * 3 + [[1]])[:, :3])
    drawn = sampler.sample(tf.constant(_multi_hot([[2]] * 2000)[:, :3]), tf.constant([0, 1]))
    frac = drawn.numpy()[:, 0].mean()
    assert frac == pytest.approx(0.75, abs=0.04)
    alone = MismatchSampler(_multi_hot([[1]] * 5)[:, :3])
    out = alone.sample(tf.constant(_multi_hot([[1], [0]])[:, :3]), tf.constant([0, 0]))
    np.testing.assert_array_equal(out.numpy(), _multi_hot([[1], [1]])[:, :3])


def test_mismatch_on_every_set_of_a_random_pool():
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 6)) < 0.3).astype(np.uint8)
    sampler = MismatchSampler(labels)
    query = np.repeat(labels, 10, axis=0).astype(np.float32)
    drawn = sampler.sample(tf.constant(query), tf.constant([3, 4])).numpy()
    assert np.all(np.any(drawn != query, axis=1))
    pool = {tuple(r) for r in labels.astype(np.float32)}
    assert all(tuple(r) in pool for r in drawn)


# --- tf.distribute ------------------------------------------------------------

def test_distributed_dataset_per_replica_batches(tiny_dataset):
    data_dir, _ = tiny_dataset
    strategy = mirrored_strategy(2)
    cfg = InputConfig(data_dir, "train", batch_size=6, image_size=8, resize_size=16,
                      crop_sizes=(16,))
    dist = distributed_dataset(strategy, cfg)
    images, labels = next(iter(dist))
    per_replica = strategy.experimental_local_results(images)
    assert [t.shape[0] for t in per_replica] == [3, 3]
    with pytest.raises(ValueError, match="must divide by the 2 replicas"):
        distributed_dataset(strategy, InputConfig(data_dir, batch_size=5))


def test_input_context_shards_without_overlap(tiny_dataset):
    data_dir, _ = tiny_dataset
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                         num_replicas_in_sync=2)
        cfg = InputConfig(data_dir, "train", batch_size=2, image_size=8, resize_size=16,
                          crop_sizes=(16,), with_ids=True, repeat=False)
        seen.append([i.decode() for x, _ in make_dataset(cfg, ctx)
                     for i in x["ids"].numpy()])
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) + len(seen[1]) == 18


def test_model_input_picks_the_model_tensor():
    from pipelines import model_input
    images, features, ids = tf.ones((2, 4, 4, 3)), tf.zeros((2, 5)), tf.constant(["a", "b"])
    assert model_input(images) is images
    assert model_input({"images": images, "mismatched_labels": features}) is images
    assert model_input({"features": features, "ids": ids}) is features
    with pytest.raises(KeyError):
        model_input({"ids": ids})
