"""The evaluation figures (issue 15 item 6): what is drawn against sklearn and
hand-made cases, the PNG files and the TensorBoard events they become."""

import glob
import io

import numpy as np
import pytest
import tensorflow as tf
from matplotlib import image as mpl_image
from sklearn.metrics import average_precision_score

from conftest import read_records, write_image
from mltf import metrics
from mltf.data import writer
from mltf.data.sources import Item, SourceData
from mltf.metrics import figures
from mltf.training import pictures


def _scores(n=60, c=6, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.float32)
    y[:, 1] = 0  # a class without a positive: no AP, no panel, no bar
    # Coarse scores, so ties occur and the step curve must handle them.
    s = np.round(np.clip(0.35 * y + rng.random((n, c)) * 0.7, 0, 1), 1)
    return y, s


def test_label_outcomes_on_a_hand_made_case():
    y_true = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    y_pred = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
    correct, missed, wrong = figures.label_outcomes(y_true, y_pred)
    assert [tuple(x) for x in np.argwhere(correct)] == [(0, 0)]
    assert [tuple(x) for x in np.argwhere(missed)] == [(0, 1), (1, 3)]
    assert [tuple(x) for x in np.argwhere(wrong)] == [(0, 2), (2, 1)]


def test_pr_classes_all_in_label_order_else_best_and_worst():
    ap = np.array([0.9, np.nan, 0.1, 0.5, 0.7, 0.3])
    assert figures.pr_classes(ap, 5).tolist() == [0, 2, 3, 4, 5]
    assert figures.pr_classes(ap, 4).tolist() == [0, 4, 5, 2]
    assert figures.pr_classes(ap, 3).tolist() == [0, 4, 2]
    # Ties by the lower index.
    assert figures.pr_classes(np.array([0.5, 0.5, 0.5, 0.2]), 2).tolist() == [0, 3]


def _step_area(line):
    """The area under a ``where="post"`` step line drawn over decreasing recall."""
    recall, precision = (np.asarray(v, np.float64) for v in line.get_data())
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def test_pr_curves_draw_the_per_class_ap():
    y, s = _scores()
    names = [f"c{j}" for j in range(y.shape[1])]
    fig, shown = figures.pr_curves_figure(y, s, names)
    assert [j for j, _ in shown] == [0, 2, 3, 4, 5]
    axes = fig.get_axes()
    assert len(axes) == 5
    for ax, (j, ap) in zip(axes, shown):
        want = average_precision_score(y[:, j], s[:, j])
        assert ap == pytest.approx(want, abs=1e-12)
        assert ap == pytest.approx(metrics.average_precision(y, s)[j], abs=1e-12)
        assert _step_area(ax.lines[0]) == pytest.approx(want, abs=1e-12)
        assert ax.get_title() == f"c{j}  AP {want:.3f}"


def test_pr_curves_of_many_classes_are_capped():
    y, s = _scores(n=200, c=40, seed=1)
    fig, shown = figures.pr_curves_figure(y, s, [f"c{j}" for j in range(40)])
    ap = np.array([average_precision_score(y[:, j], s[:, j]) if y[:, j].any() else np.nan
                   for j in range(40)])
    ranked = sorted(np.flatnonzero(~np.isnan(ap)), key=lambda j: (-ap[j], j))
    assert [j for j, _ in shown] == ranked[:8] + ranked[-8:]
    assert len(fig.get_axes()) == figures.MAX_PR_PANELS
    assert "the 8 best and 8 worst by AP" in fig._suptitle.get_text()


@pytest.mark.parametrize("c", [6, figures.MAX_BAR_NAMES + 5])
def test_ap_bars_sorted_with_the_map_line(c):
    y, s = _scores(n=200, c=c, seed=2)
    names = [f"c{j}" for j in range(c)]
    fig, order, ap = figures.ap_figure(y, s, names)
    want = np.array([average_precision_score(y[:, j], s[:, j]) if y[:, j].any() else np.nan
                     for j in range(c)])
    np.testing.assert_allclose(ap, want, atol=1e-12)
    assert 1 not in order and len(order) == c - 1
    assert list(order) == sorted(order, key=lambda j: (-want[j], j))
    ax = fig.get_axes()[0]
    heights = [p.get_width() if c <= figures.MAX_BAR_NAMES else p.get_height()
               for p in ax.patches]
    np.testing.assert_allclose(heights, want[order], atol=1e-12)
    line = ax.lines[0].get_xdata() if c <= figures.MAX_BAR_NAMES else ax.lines[0].get_ydata()
    assert line[0] == pytest.approx(metrics.mean_average_precision(y, s), abs=1e-12)
    if c <= figures.MAX_BAR_NAMES:
        assert [t.get_text() for t in ax.get_yticklabels()] == [names[j] for j in order]


def test_image_grid_colours_correct_missed_and_wrong_labels():
    names = ["cat", "dog", "sky"]
    y = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 1]], np.float32)
    s = np.array([[0.9, 0.2, 0.8], [0.1, 0.3, 0.7], [0.6, 0.55, 0.8]], np.float32)
    images = [np.full((10, 14, 3), 40 * i, np.uint8) for i in range(3)]
    fig = figures.image_grid_figure(images, y, s, np.array([0.5, 0.5, 0.75]), names)
    colours = {v: k for k, v in figures.OUTCOME_COLORS.items()}
    texts = [(t.get_text(), colours.get(t.get_color(), "none")) for t in fig.texts]
    # Per image: correct, missed, wrong, each kind by score; per-class
    # thresholds (sky 0.7 < 0.75 is not predicted).
    assert texts == [("cat 0.90", "correct"), ("dog 0.20", "missed"), ("sky 0.80", "wrong"),
                     ("no label, none predicted", "none"),
                     ("sky 0.80", "correct"), ("cat 0.60", "wrong"), ("dog 0.55", "wrong")]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [figures.OUTCOME_HELP[k] for k in ("correct", "missed", "wrong")]


def test_image_grid_caps_the_lines_per_image():
    c = figures.MAX_LINES + 3
    y = np.ones((1, c), np.float32)
    s = np.linspace(0.9, 0.1, c)[None].astype(np.float32)
    fig = figures.image_grid_figure([np.zeros((4, 4, 3), np.uint8)], y, s, 0.5,
                                    [f"l{j}" for j in range(c)])
    texts = [t.get_text() for t in fig.texts]
    assert len(texts) == figures.MAX_LINES
    assert texts[-1] == f"+{c - figures.MAX_LINES + 1} more"


def _image_dataset(tmp_path, n=6):
    items = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.png"
        write_image(path, 20 + 7 * i, 30, seed=i)
        items.append(Item(f"{i}.png", [i % 3] + ([2] if i % 2 else []), path=str(path)))
    writer.write_dataset(SourceData(["cat", "dog", "sky"], {"val": items}),
                         str(tmp_path / "ds"), num_shards=2, progress=False)
    return str(tmp_path / "ds")


def test_read_images_in_the_order_of_the_ids(tmp_path):
    data_dir = _image_dataset(tmp_path)
    info, records = read_records(data_dir, "val")
    wanted = [records[4]["id"], records[0]["id"], records[2]["id"]]
    got = pictures.read_images(data_dir, "val", np.array(wanted), info, side=32)
    by_id = {r["id"]: r for r in records}
    for image, key in zip(got, wanted):
        raw = tf.io.decode_png(by_id[key]["encoded"]).numpy()
        if max(raw.shape[:2]) <= 32:
            np.testing.assert_array_equal(image, raw)
        else:  # shrunk, aspect kept
            assert max(image.shape[:2]) == 32
            assert image.shape[1] / image.shape[0] == pytest.approx(
                raw.shape[1] / raw.shape[0], abs=0.05)
    assert len(got) == 3


def _predictions(data_dir):
    info, records = read_records(data_dir, "val")
    ids = np.array([r["id"] for r in records])
    y = np.zeros((len(records), 3), np.float32)
    for i, r in enumerate(records):
        y[i, r["labels"]] = 1
    s = np.random.default_rng(0).random(y.shape).astype(np.float32)
    return info, (ids, y, s)


def test_pngs_and_tensorboard_images_of_an_image_dataset(tmp_path):
    data_dir = _image_dataset(tmp_path)
    info, predictions = _predictions(data_dir)
    drawn = pictures.draw(info, data_dir, "val", predictions, 0.5, "test")
    # The figures' sizes in pixels: 4 columns at most (here the 3 classes in
    # one row of 3, the 6 images in 2 rows of 4), 6 lines under each image.
    sizes = {"pr_curves": (int(round(100 * (2.4 + 0.5))), 780),
             "ap": (int(round(100 * (1.2 + 0.2 * 3))), 600),
             "images": (int(round(100 * (2 * (2.0 + 0.16 * 6 + 0.15) + 0.45))), 880)}
    assert {k: v.shape for k, v in drawn.items()} == {k: (*v, 3) for k, v in sizes.items()}
    # The grid: the first 6 records' images (all), at the thresholds given.
    first = [r["id"] for r in read_records(data_dir, "val")[1]]
    want = figures.image_grid_figure(pictures.read_images(data_dir, "val", first, info),
                                     predictions[1], predictions[2], 0.5, info.label_names)
    np.testing.assert_array_equal(drawn["images"], figures.to_rgb(want))
    paths = pictures.write_pngs(str(tmp_path / "out" / "eval_val"), drawn)
    assert paths == [str(tmp_path / "out" / f"eval_val_{k}.png")
                     for k in ("pr_curves", "ap", "images")]
    for key in drawn:
        data = (tmp_path / "out" / f"eval_val_{key}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpl_image.imread(io.BytesIO(data))
        assert pixels.shape[:2] == sizes[key]
        assert pixels[..., :3].std() > 0.01  # something drawn, not a blank page
        np.testing.assert_array_equal(tf.io.decode_png(data).numpy(), drawn[key])

    log_dir = str(tmp_path / "tb")
    pictures.write_tensorboard(log_dir, drawn, predictions[1], predictions[2],
                               info.label_names, step=3)
    found = {}
    for path in glob.glob(log_dir + "/events.out.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found[value.tag] = (event.step, value)
    assert set(found) == {"pr_curves", "ap_per_class", "images",
                          *(f"pr_curve/{n}/pr_curves" for n in ("cat", "dog", "sky"))}
    for key, tag in pictures.TAGS.items():
        step, value = found[tag]
        # tf.summary.image stores [width, height, PNG...] strings.
        width, height, png = tf.make_ndarray(value.tensor)
        assert step == 3 and (int(height), int(width)) == sizes[key]
        assert tf.io.decode_png(png).numpy().shape == (*sizes[key], 3)
    # The PR plugin's curve of "sky": at threshold 0 every example is
    # predicted (tp = positives, fp = negatives).
    curve = tf.make_ndarray(found["pr_curve/sky/pr_curves"][1].tensor)
    y = predictions[1][:, 2]
    assert curve[0, 0] == y.sum() and curve[1, 0] == len(y) - y.sum()


def test_a_feature_dataset_gets_no_grid_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    items = [Item(f"r{i}", [i % 3], features=rng.normal(size=4)) for i in range(9)]
    writer.write_dataset(SourceData(["a", "b", "c"], {"val": items}, kind="features",
                                    feature_dim=4), str(tmp_path / "f"), progress=False)
    info, predictions = _predictions(str(tmp_path / "f"))
    capsys.readouterr()
    drawn = pictures.draw(info, str(tmp_path / "f"), "val", predictions, 0.5, "mltf.evaluate")
    assert set(drawn) == {"pr_curves", "ap"}
    assert capsys.readouterr().out == (f"mltf.evaluate: no image grid: {tmp_path / 'f'} "
                                       "holds feature vectors, not images\n")
