"""Figures of one evaluation, drawn from its labels and scores: per-class
precision-recall curves, the per-class AP bar chart and a grid of images
with their true and predicted labels.

Drawn on matplotlib's Agg canvas directly (``matplotlib.figure.Figure``, no
``pyplot``): no display, no global backend and no figure kept alive by a
global registry, so a training run or a headless server can draw them.
``to_rgb`` renders a figure to a uint8 RGB array (what ``tf.summary.image``
takes and a PNG holds) at the figure's own size (``DPI`` pixels per inch,
no tight cropping), so the pixel size is known before drawing.

The AP of every curve and bar is ``mltf.metrics.average_precision`` (the
non-interpolated AP of ``compute_all``'s ``mAP``); a curve is sklearn's
``precision_recall_curve`` drawn as the step function whose area is that AP.

Many labels (COCO's 80, corel5k's 374) would make one panel per class
unreadable: at most ``MAX_PR_PANELS`` panels are drawn, the best and the
worst half of them by AP, and the bar chart names classes only up to
``MAX_BAR_NAMES`` (beyond, the bars are drawn unnamed, ranked by AP).

Imported on its own (``from mltf.metrics import figures``): ``mltf.metrics``
does not import matplotlib.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.metrics import precision_recall_curve

from mltf.metrics.ranking import average_precision
from mltf.metrics.thresholds import binarize

DPI = 100
# Panels of precision-recall curves at most: the top and the bottom half by AP.
MAX_PR_PANELS = 16
PR_COLUMNS = 4
# Up to this many classes the AP bars carry the class names.
MAX_BAR_NAMES = 60
# Images in the grid at most, and label lines under each.
MAX_GRID_IMAGES = 16
GRID_COLUMNS = 4
MAX_LINES = 6
# Told apart by colour and by the legend: a label that is true and
# predicted, true and missed, predicted and not true.
OUTCOME_COLORS = {"correct": "#1a9641", "missed": "#f28e00", "wrong": "#d7191c"}
OUTCOME_HELP = {"correct": "correct (true, predicted)", "missed": "missed (true, not predicted)",
                "wrong": "wrong (predicted, not true)"}


def _figure(width, height):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def to_rgb(fig) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of ``fig`` (``H, W`` = its size in inches
    times ``DPI``)."""
    fig.canvas.draw()
    return np.array(fig.canvas.buffer_rgba())[..., :3]


def label_outcomes(y_true, y_pred):
    """``(correct, missed, wrong)``, boolean arrays of ``y_true``'s shape:
    true and predicted, true and not predicted, predicted and not true."""
    t = np.asarray(y_true) > 0
    p = np.asarray(y_pred) > 0
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    return t & p, t & ~p, ~t & p


def pr_classes(ap, max_panels: int = MAX_PR_PANELS):
    """The classes whose curves are drawn, in panel order: every class with a
    positive (NaN AP: none) in label order when there are at most
    ``max_panels``, else the ``ceil(max_panels / 2)`` best then the
    ``floor(max_panels / 2)`` worst by AP, each by AP descending (ties: lower
    index first)."""
    ap = np.asarray(ap, np.float64)
    defined = np.flatnonzero(~np.isnan(ap))
    if len(defined) <= max_panels:
        return defined
    ranked = defined[np.lexsort((defined, -ap[defined]))]
    top = (max_panels + 1) // 2
    return np.concatenate([ranked[:top], ranked[len(ranked) - (max_panels - top):]])


def pr_curves_figure(y_true, scores, label_names, max_panels: int = MAX_PR_PANELS):
    """Per-class precision-recall curves on a grid of small panels.

    Returns ``(figure, shown)``: ``shown`` the ``(class index, AP)`` of each
    panel in order (``pr_classes``). Each panel draws the curve as a step
    function (the area under it is the AP in its title) and the class's
    share of positives as a dashed line (a random scorer's precision).
    """
    y = np.asarray(y_true)
    s = np.asarray(scores)
    ap = average_precision(y, s)
    chosen = pr_classes(ap, max_panels)
    rows = max(1, -(-len(chosen) // PR_COLUMNS))
    cols = min(PR_COLUMNS, max(1, len(chosen)))
    fig = _figure(2.6 * cols, 2.4 * rows + 0.5)
    c = y.shape[1]
    defined = int((~np.isnan(ap)).sum())
    title = f"Precision-recall per class ({defined} of {c} classes with a positive"
    if len(chosen) < defined:
        title += f"; the {(len(chosen) + 1) // 2} best and {len(chosen) // 2} worst by AP"
    fig.suptitle(title + ")", fontsize=10)
    shown = []
    for k, j in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, k + 1)
        precision, recall, _ = precision_recall_curve(y[:, j], s[:, j])
        ax.step(recall, precision, where="post", color="#2c7bb6", linewidth=1.2)
        ax.axhline(float(y[:, j].mean()), color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{label_names[j]}  AP {ap[j]:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        if k // cols == rows - 1:
            ax.set_xlabel("recall", fontsize=7)
        if k % cols == 0:
            ax.set_ylabel("precision", fontsize=7)
        shown.append((int(j), float(ap[j])))
    if not shown:
        fig.text(0.5, 0.5, "no class has a positive: no curve", ha="center")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12 / rows + 0.04,
                        top=1 - 0.5 / (2.4 * rows + 0.5) - 0.04, hspace=0.55, wspace=0.3)
    return fig, shown


def ap_figure(y_true, scores, label_names):
    """The per-class AP as bars, best first, with the mAP as a dashed line.

    Returns ``(figure, order, ap)``: ``order`` the class indices of the bars
    (AP descending, ties by index; classes without a positive are left out
    and counted in the title), ``ap`` the per-class AP ``[C]`` drawn.
    """
    ap = average_precision(y_true, scores)
    defined = np.flatnonzero(~np.isnan(ap))
    order = defined[np.lexsort((defined, -ap[defined]))]
    m = float(ap[order].mean()) if len(order) else float("nan")
    absent = len(ap) - len(order)
    note = f"; {absent} without a positive not shown" if absent else ""
    named = len(order) <= MAX_BAR_NAMES
    if named:
        fig = _figure(6.0, 1.2 + 0.2 * max(len(order), 3))
        ax = fig.add_axes((0.32, 0.6 / fig.get_figheight(),
                           0.63, 1 - 1.0 / fig.get_figheight()))
        pos = np.arange(len(order))
        ax.barh(pos, ap[order], color="#2c7bb6", height=0.7)
        ax.set_yticks(pos, [label_names[j] for j in order], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.axvline(m, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("average precision", fontsize=8)
    else:
        fig = _figure(10.0, 4.0)
        ax = fig.add_axes((0.08, 0.15, 0.9, 0.72))
        ax.bar(np.arange(len(order)), ap[order], color="#2c7bb6", width=1.0)
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_ylim(0, 1)
        ax.axhline(m, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"classes ranked by AP (names omitted above {MAX_BAR_NAMES})",
                      fontsize=8)
        ax.set_ylabel("average precision", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"AP per class, mAP {m:.3f} (dashed){note}", fontsize=9)
    return fig, order, ap


def image_grid_figure(images, y_true, scores, thresholds, label_names,
                      columns: int = GRID_COLUMNS):
    """Images with their labels under each: correct (green), missed (orange)
    and wrong (red, predicted but not true) labels with their scores, in that
    order, each kind by score descending, at most ``MAX_LINES`` lines (then
    ``+N more``), and a legend.

    Args:
      images: uint8 ``[H, W, 3]`` arrays (any sizes), of the first
        ``len(images)`` rows of ``y_true`` and ``scores``.
      y_true, scores: ``[N, C]`` labels and scores (``N >= len(images)``).
      thresholds: a scalar or ``[C]``: predicted is ``score >= threshold``.
      label_names: the ``C`` names.
      columns: images per row.
    """
    n = len(images)
    y = np.asarray(y_true)[:n]
    s = np.asarray(scores)[:n]
    correct, missed, wrong = label_outcomes(y, binarize(s, thresholds))
    cols = min(columns, max(n, 1))
    rows = max(1, -(-n // cols))
    cell_w, image_h, line_h = 2.2, 2.0, 0.16
    cell_h = image_h + line_h * MAX_LINES + 0.15
    legend_h = 0.45
    fig = _figure(cell_w * cols, cell_h * rows + legend_h)
    width, height = fig.get_figwidth(), fig.get_figheight()
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        top = height - legend_h - r * cell_h
        ax = fig.add_axes((q * cell_w / width + 0.05 / width, (top - image_h) / height,
                           (cell_w - 0.1) / width, (image_h - 0.05) / height))
        ax.imshow(np.asarray(image))
        ax.set_axis_off()
        lines = []
        for kind, mask in (("correct", correct), ("missed", missed), ("wrong", wrong)):
            js = np.flatnonzero(mask[i])
            lines += [(f"{label_names[j]} {s[i, j]:.2f}", kind)
                      for j in js[np.argsort(-s[i, js], kind="stable")]]
        if len(lines) > MAX_LINES:
            lines = lines[:MAX_LINES - 1] + [(f"+{len(lines) - MAX_LINES + 1} more", None)]
        if not lines:
            lines = [("no label, none predicted", None)]
        for k, (text, kind) in enumerate(lines):
            fig.text((q * cell_w + 0.08) / width, (top - image_h - 0.05 - (k + 1) * line_h)
                     / height, text, fontsize=7, color=OUTCOME_COLORS.get(kind, "black"))
    fig.legend(handles=[Patch(color=OUTCOME_COLORS[k], label=OUTCOME_HELP[k])
                        for k in OUTCOME_COLORS],
               loc="upper center", ncol=3, fontsize=7, frameon=False)
    return fig


def evaluation_figures(y_true, scores, thresholds, label_names, images=None) -> dict:
    """``{"pr_curves", "ap", "images"}`` figures of one evaluation
    (``"images"`` only when ``images`` are given: the first rows'
    images, see ``image_grid_figure``)."""
    out = {"pr_curves": pr_curves_figure(y_true, scores, label_names)[0],
           "ap": ap_figure(y_true, scores, label_names)[0]}
    if images:
        out["images"] = image_grid_figure(images, y_true, scores, thresholds, label_names)
    return out
