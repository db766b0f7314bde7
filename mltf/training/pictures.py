"""The figures of an evaluation (``mltf.metrics.figures``) for TensorBoard
and as PNG files: the end of ``mltf.train`` (the final evaluation of
``model.keras`` on the reported split) and ``mltf.evaluate``.

TensorBoard receives the three figures as images (tags ``pr_curves``,
``ap_per_class``, ``images``) and one PR-curve summary per class (tag
``pr_curve/<label>/pr_curves``, TensorBoard's PR curves plugin). The image grid shows
the split's first ``figures.MAX_GRID_IMAGES`` records in file order (the
order of the predictions), with the labels predicted at the thresholds
used; a feature dataset has no images and gets no grid (one line says so).
"""

import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_summary

import pipelines
from mltf.data import schema
from mltf.metrics import figures
from mltf.utils import atomic

# The images' longer side in the grid (pixels): the panels are about 200 px.
_GRID_SIDE = 192
# Thresholds of TensorBoard's PR curves (its default is 201 too).
_PR_THRESHOLDS = 201
TAGS = {"pr_curves": "pr_curves", "ap": "ap_per_class", "images": "images"}
_DESCRIPTIONS = {
    "pr_curves": "Precision-recall per class: every class up to "
                 f"{figures.MAX_PR_PANELS}, else the best and worst half of them by AP; "
                 "dashed: the share of positives",
    "ap": "Average precision per class, best first; dashed: the mAP",
    "images": "The split's first images: correct (green), missed (orange) and wrong "
              "(red) labels with their scores",
}


def read_images(data_dir: str, split: str, ids, info: schema.DatasetInfo, side=_GRID_SIDE):
    """uint8 ``[h, w, 3]`` images of the records of ``split`` whose ids are
    ``ids``, in the order of ``ids`` (each shrunk to at most ``side`` pixels,
    aspect kept); reading stops once all are found."""
    wanted = [str(i) for i in ids]
    if not wanted:
        return []
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(wanted), tf.ones(len(wanted), tf.int32)),
        default_value=0)
    paths = [tf.io.gfile.join(data_dir, s) for s in info.split(split).shards]
    parse = pipelines.input.parse_fn(info)
    found = {}
    ds = tf.data.TFRecordDataset(paths).map(parse).filter(
        lambda ex: table.lookup(ex["ids"]) > 0).take(len(set(wanted)))
    for ex in ds:
        image = tf.image.decode_image(ex["encoded"], channels=3, expand_animations=False)
        if max(image.shape[:2]) > side:
            image = tf.image.resize(image, (side, side), preserve_aspect_ratio=True,
                                    antialias=True)
        found[ex["ids"].numpy().decode("utf-8")] = np.asarray(
            tf.cast(tf.round(image), tf.uint8))
    return [found[i] for i in wanted if i in found]


def draw(info, data_dir, split, predictions, thresholds, tool: str) -> dict:
    """``figures.evaluation_figures`` of ``predictions`` (``(ids, labels,
    scores)`` of ``split``, in file order) at ``thresholds``, each rendered
    once to uint8 RGB ``[H, W, 3]`` (for TensorBoard and the PNGs alike); for
    a feature dataset without the grid, saying so on stdout (prefixed by
    ``tool``)."""
    ids, y, s = predictions
    images = None
    if info.kind == schema.KIND_IMAGE:
        images = read_images(data_dir, split, ids[:figures.MAX_GRID_IMAGES], info)
    else:
        print(f"{tool}: no image grid: {data_dir} holds feature vectors, not images",
              flush=True)
    drawn = figures.evaluation_figures(y, s, thresholds, info.label_names, images)
    return {key: figures.to_rgb(fig) for key, fig in drawn.items()}


def write_tensorboard(log_dir: str, drawn: dict, y_true, scores, label_names,
                      step: int = 0) -> None:
    """Writes the images of ``drawn`` (``draw``) and one PR curve per class
    into event files in ``log_dir``, at ``step``."""
    writer = tf.summary.create_file_writer(log_dir)
    y = np.asarray(y_true) > 0
    s = np.asarray(scores, np.float32)
    with writer.as_default():
        for key, rgb in drawn.items():
            tf.summary.image(TAGS[key], rgb[None], step=step,
                             description=_DESCRIPTIONS[key])
        for j, name in enumerate(label_names):
            pb = pr_summary.pb(f"pr_curve/{name}", y[:, j], s[:, j],
                               num_thresholds=_PR_THRESHOLDS)
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)
    writer.flush()
    writer.close()


def write_pngs(stem: str, drawn: dict) -> list:
    """Writes ``<stem>_pr_curves.png``, ``<stem>_ap.png`` and (when drawn)
    ``<stem>_images.png``; returns their paths."""
    paths = []
    for key, rgb in drawn.items():
        paths.append(f"{stem}_{key}.png")
        atomic.atomic_write(paths[-1], lambda tmp, rgb=rgb: tf.io.write_file(
            tmp, tf.io.encode_png(rgb)))
    return paths
