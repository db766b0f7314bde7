"""The offline ``demo`` source: digit scenes whose labels really co-occur."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from conftest import read_records
from mltf.data import sources
from mltf.data.sources import demo_source
from mltf.data.sources.base import SourceError
from mltf.data.writer import write_dataset

NAMES = ["zero", "one", "two", "three", "four",
         "five", "six", "seven", "eight", "nine"]

# The rules, copied by hand from the table in demo_source's docstring.
DOC_THEMES = [({"zero", "six", "eight"}, 0.30),
              ({"one", "four", "seven"}, 0.30),
              ({"two", "three", "five"}, 0.25),
              ({"nine", "three", "eight"}, 0.15)]
DOC_K = {1: 0.25, 2: 0.40, 3: 0.35}  # how many of the theme's 3 labels
DOC_OUTSIDE = 0.10  # one extra label, uniform over the 7 outside the theme

E_K = sum(k * p for k, p in DOC_K.items())  # 2.1
E_KK = sum(k * (k - 1) * p for k, p in DOC_K.items())  # 2.9
IN = E_K / 3  # P(a given label of the theme appears)
BOTH_IN = E_KK / 6  # P(two given labels of the theme both appear)
OUT = DOC_OUTSIDE / 7  # P(a given outside label is the extra one)


def doc_p(a):
    """P(a) from the docstring's rules, by hand."""
    return sum(p * (IN if a in theme else OUT) for theme, p in DOC_THEMES)


def doc_p_pair(a, b):
    """P(a and b) from the rules: both from the theme, or one from the theme
    and the other as the single outside label."""
    total = 0.0
    for theme, p in DOC_THEMES:
        if a in theme and b in theme:
            total += p * BOTH_IN
        elif (a in theme) != (b in theme):
            total += p * IN * OUT
    return total


def doc_conditional(b, a):
    """P(b | a)."""
    return doc_p_pair(a, b) / doc_p(a)


def doc_cardinality():
    card = {n: 0.0 for n in range(1, 5)}
    for k, p in DOC_K.items():
        card[k] += p * (1 - DOC_OUTSIDE)
        card[k + 1] += p * DOC_OUTSIDE
    return card


def options(**kw):
    base = dict(demo_num_train=200, demo_num_val=60, demo_image_size=32, seed=0)
    base.update(kw)
    return demo_source.Options(**base)


def multi_hot(label_lists):
    y = np.zeros((len(label_lists), 10), np.float64)
    for i, labels in enumerate(label_lists):
        y[i, labels] = 1
    return y


@pytest.fixture(scope="module")
def large():
    """4,000 training scenes at 32 px (under a second) for the frequencies."""
    return demo_source.generate(options(demo_num_train=4000, demo_num_val=0))["train"]


def test_registered_and_shapes():
    data = sources.load("demo", options())
    assert data.kind == "image"
    assert data.label_names == NAMES
    assert set(data.splits) == {"train", "val"}
    assert len(data.splits["train"]) == 200 and len(data.splits["val"]) == 60
    for split, items in data.splits.items():
        assert [it.key for it in items] == [f"demo-{split}-{i:05d}"
                                            for i in range(len(items))]
        for it in items:
            assert it.path is None and it.data is None and it.features is None
            assert it.array.shape == (32, 32, 3) and it.array.dtype == np.uint8
            assert list(it.labels) == sorted(set(it.labels))
            assert 1 <= len(it.labels) <= 4
            assert all(0 <= c < 10 for c in it.labels)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_sizes(size):
    data = demo_source.load(options(demo_num_train=12, demo_num_val=4,
                                    demo_image_size=size))
    for items in data.splits.values():
        for it in items:
            assert it.array.shape == (size, size, 3) and it.array.dtype == np.uint8
            # Not a blank image: noise, digits and occluders vary the pixels.
            assert it.array.std() > 5


def test_deterministic_given_seed():
    a = demo_source.load(options())
    b = demo_source.load(options())
    c = demo_source.load(options(seed=1))
    for split in ("train", "val"):
        for x, y in zip(a.splits[split], b.splits[split]):
            assert x.key == y.key and list(x.labels) == list(y.labels)
            np.testing.assert_array_equal(x.array, y.array)
        assert any(not np.array_equal(x.array, z.array)
                   for x, z in zip(a.splits[split], c.splits[split]))
        assert ([list(x.labels) for x in a.splits[split]]
                != [list(z.labels) for z in c.splits[split]])
    assert not np.array_equal(demo_source.split_instances(0)["val"],
                              demo_source.split_instances(1)["val"])


def test_val_scenes_do_not_depend_on_num_train():
    a = demo_source.load(options(demo_num_train=50))
    b = demo_source.load(options(demo_num_train=80))
    for x, y in zip(a.splits["val"], b.splits["val"]):
        np.testing.assert_array_equal(x.array, y.array)
        assert list(x.labels) == list(y.labels)


def test_scenes_without_pixels_are_the_same_scenes():
    full = demo_source.generate(options())
    bare = demo_source.generate(options(), render=False)
    for split in ("train", "val"):
        assert bare[split].images is None and bare[split].object_box is None
        assert bare[split].labels == full[split].labels
        for key in ("themes", "instances", "object_scene", "object_label", "object_instance",
                    "object_state"):
            np.testing.assert_array_equal(getattr(bare[split], key),
                                          getattr(full[split], key), err_msg=key)


def test_train_and_val_use_disjoint_digit_instances():
    _, targets = demo_source._digits()
    scenes = demo_source.generate(options())
    train, val = scenes["train"], scenes["val"]
    assert not set(train.instances) & set(val.instances)
    assert len(train.instances) + len(val.instances) == 1797
    assert 0.15 < len(val.instances) / 1797 < 0.25
    # Every class has unseen val handwriting.
    assert set(targets[val.instances]) == set(range(10))
    for s in (train, val):
        assert set(s.object_instance) <= set(s.instances)
        # The pasted digit is of the class it is labelled with.
        np.testing.assert_array_equal(targets[s.object_instance], s.object_label)
    assert not set(train.object_instance) & set(val.object_instance)
    # The split pools are what split_instances says.
    pools = demo_source.split_instances(0)
    np.testing.assert_array_equal(pools["train"], train.instances)
    np.testing.assert_array_equal(pools["val"], val.instances)


def test_objects_match_labels_and_fit_in_the_image():
    s = demo_source.generate(options(demo_num_train=300, demo_num_val=0,
                                     demo_image_size=48))["train"]
    for i, labels in enumerate(s.labels):
        objects = s.object_label[s.object_scene == i]
        assert sorted(objects.tolist()) == labels  # one digit per label
    top, left, side = s.object_box.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + side <= 48).all() and (left + side <= 48).all()
    assert side.min() >= round(0.28 * 48) and side.max() <= round(0.42 * 48)


def test_cardinality_and_hard_objects(large):
    card = np.array([len(labels) for labels in large.labels])
    assert card.min() >= 1 and card.max() <= 4
    expected = doc_cardinality()
    for n in range(1, 5):
        assert abs((card == n).mean() - expected[n]) < 0.03, n
    assert abs(card.mean() - (E_K + DOC_OUTSIDE)) < 0.05
    # Documented: 15% faint, 15% occluded, independently per object.
    state = large.object_state
    assert abs((state == demo_source.FAINT).mean() - 0.15) < 0.02
    assert abs((state == demo_source.OCCLUDED).mean() - 0.15) < 0.02


def test_label_frequencies_match_the_rules(large):
    y = multi_hot(large.labels)
    for c, name in enumerate(NAMES):
        assert abs(y[:, c].mean() - doc_p(name)) < 0.03, name
    # Spot values written in the docstring.
    assert doc_p("zero") == pytest.approx(0.22)
    assert doc_p("nine") == pytest.approx(0.1171, abs=1e-4)
    assert doc_conditional("seven", "one") == pytest.approx(0.659, abs=1e-3)
    assert doc_conditional("two", "one") == pytest.approx(0.025, abs=1e-3)


def test_conditional_frequencies_match_the_rules(large):
    y = multi_hot(large.labels)
    pairs = [("one", "seven"), ("zero", "six"), ("two", "three"),
             ("nine", "eight"), ("three", "eight"), ("one", "two"),
             ("zero", "one"), ("six", "five")]
    for a, b in pairs:
        ia, ib = NAMES.index(a), NAMES.index(b)
        measured = y[y[:, ia] == 1, ib].mean()
        assert abs(measured - doc_conditional(b, a)) < 0.07, (a, b)


def test_rule_statistics_agree_with_the_docstring():
    stats = demo_source.rule_statistics()
    for i, a in enumerate(NAMES):
        assert stats["label"][i] == pytest.approx(doc_p(a))
        for j, b in enumerate(NAMES):
            if i != j:
                assert stats["pair"][i, j] == pytest.approx(doc_p_pair(a, b))
    card = doc_cardinality()
    np.testing.assert_allclose(stats["cardinality"],
                               [0.0] + [card[n] for n in range(1, 5)])


def test_co_occurrence_is_real_in_a_small_dataset():
    data = demo_source.load(options())
    y = multi_hot([list(it.labels) for it in data.splits["train"]])

    def cond(b, a):
        ia, ib = NAMES.index(a), NAMES.index(b)
        return y[y[:, ia] == 1, ib].mean()

    # Within a theme vs across themes.
    for (a, b), (c, d) in [(("one", "seven"), ("one", "two")),
                           (("zero", "six"), ("zero", "one")),
                           (("two", "five"), ("two", "four"))]:
        assert cond(b, a) > 3 * cond(d, c) + 0.1, (a, b, c, d)
    # Over all pairs: a pair sharing a theme appears together far more often
    # than one that does not (only the rare outside label makes those).
    pair_counts = y.T @ y
    within = {frozenset(p) for theme, _ in DOC_THEMES
              for p in itertools.combinations(theme, 2)}
    all_pairs = list(itertools.combinations(range(10), 2))
    in_theme = [pair_counts[i, j] for i, j in all_pairs
                if frozenset((NAMES[i], NAMES[j])) in within]
    cross = [pair_counts[i, j] for i, j in all_pairs
             if frozenset((NAMES[i], NAMES[j])) not in within]
    assert len(in_theme) == 12 and len(cross) == 33
    assert np.mean(in_theme) > 5 * np.mean(cross)
    # Expected per scene: E[k(k-1)/2] = 1.45 within, 0.1 * E[k] = 0.21 across.
    assert abs(sum(in_theme) / len(y) - E_KK / 2) < 0.3  # ~3.5 SD
    assert abs(sum(cross) / len(y) - DOC_OUTSIDE * E_K) < 0.15  # ~3 SD


def test_end_to_end_through_the_writer(tmp_path):
    data = demo_source.load(options(demo_num_train=40, demo_num_val=12))
    info = write_dataset(data, str(tmp_path / "out"), progress=False)
    assert info.label_names == NAMES
    for split, n in (("train", 40), ("val", 12)):
        assert info.splits[split].num_examples == n
        assert info.splits[split].num_skipped == 0
        items = {it.key: it for it in data.splits[split]}
        _, records = read_records(tmp_path / "out", split)
        assert sorted(r["id"] for r in records) == sorted(items)
        for r in records:
            item = items[r["id"]]
            assert r["labels"] == sorted(item.labels)
            assert (r["height"], r["width"]) == (32, 32)
            image = tf.io.decode_png(r["encoded"], channels=3).numpy()
            np.testing.assert_array_equal(image, item.array)  # PNG: lossless


def test_bad_options():
    with pytest.raises(SourceError, match="demo_image_size"):
        demo_source.load(options(demo_image_size=16))
    with pytest.raises(SourceError, match="demo_num_val"):
        demo_source.load(options(demo_num_val=-1))
    with pytest.raises(SourceError, match="both 0"):
        demo_source.load(options(demo_num_train=0, demo_num_val=0))
    data = demo_source.load(options(demo_num_val=0))
    assert set(data.splits) == {"train"}
