"""Diagnostics only the demo dataset allows, because its truth is known
object by object (``mltf.data.sources.demo_source``): how often the model
finds a digit that is faint or half hidden, against a normal one, and how
often its predicted label pairs cross the themes that the generator's label
sets follow.

* ``recall_normal``, ``recall_faint``, ``recall_occluded``: of the digits
  drawn in each state (``NORMAL``, ``FAINT``: contrast 0.15-0.30,
  ``OCCLUDED``: 40-60% of the box hidden), the share whose label the model
  predicts for its scene (``score >= threshold``); NaN with no digit in that
  state. A model that uses label dependency can recover a faint digit from
  its theme mates; one that reads pixels only loses it.
* ``cross_theme_rate_pred`` / ``cross_theme_rate_true``: of all unordered
  label pairs ``{i, j}`` inside the predicted (true) sets, pooled over the
  images, the share whose two labels share no theme (``three`` and
  ``eight`` belong to two themes each; a pair inside either is within). The
  truth's rate comes from the rare outside label alone; NaN without a pair.

``scene_truth`` draws the scenes of a dataset that ``make_tfrecords
--source=demo`` wrote again from the options it recorded (the generator is
deterministic), once per process; its ``SceneTruth`` scores any subset of a
split's images in any order by their record ids (``mltf.evaluate`` on a
whole split, ``mltf.train`` on its selection part each epoch).
"""

import dataclasses
import functools
import sys
from typing import Optional

import numpy as np

from mltf.data.sources import demo_source
from mltf.metrics.thresholds import DEFAULT_THRESHOLD, _binarize
from mltf.metrics.validation import _check_inputs, _check_threshold

DEMO_KEYS = ("recall_normal", "recall_faint", "recall_occluded", "cross_theme_rate_pred",
             "cross_theme_rate_true")

_STATES = (("normal", demo_source.NORMAL), ("faint", demo_source.FAINT),
           ("occluded", demo_source.OCCLUDED))


def same_theme() -> np.ndarray:
    """bool ``[10, 10]``: labels ``i`` and ``j`` share a theme (diagonal True)."""
    index = {name: i for i, name in enumerate(demo_source.LABEL_NAMES)}
    out = np.eye(len(index), dtype=bool)
    for _, labels, _ in demo_source.THEMES:
        members = [index[n] for n in labels]
        out[np.ix_(members, members)] = True
    return out


def _cross_theme(sets, within):
    joint = sets.astype(np.int64).T @ sets.astype(np.int64)
    upper = np.triu(np.ones(within.shape, bool), k=1)
    pairs = int(joint[upper].sum())
    cross = int(joint[upper & ~within].sum())
    return (cross / pairs if pairs else float("nan")), pairs


def demo_diagnostics(y_true, scores, object_row, object_label, object_state,
                     threshold=DEFAULT_THRESHOLD) -> dict:
    """The demo diagnostics of one evaluation set (module docstring).

    Args:
      y_true: 0/1 ``[N, 10]``, the split's true label sets.
      scores: ``[N, 10]`` probabilities.
      object_row, object_label, object_state: ``[M]`` per drawn digit: the
        row of its scene in ``y_true``, its label and its state
        (``DemoScenes.object_state``).
      threshold: scalar or per-class ``[10]``; predicted iff ``score >= t``.

    Returns the five rates (floats) and ``num_normal``, ``num_faint``,
    ``num_occluded``, ``num_pairs_pred``, ``num_pairs_true`` (ints). Raises
    ``ValueError`` when a digit's label is not in its scene's true set (the
    objects belong to other scenes).
    """
    y, s = _check_inputs(y_true, scores)
    if y.shape[1] != len(demo_source.LABEL_NAMES):
        raise ValueError(f"the demo has {len(demo_source.LABEL_NAMES)} labels, "
                         f"y_true {y.shape[1]}")
    rows, labels, states = (np.asarray(a, np.int64)
                            for a in (object_row, object_label, object_state))
    if not y[rows, labels].all():
        raise ValueError("a digit's label is not in its scene's true set: the objects "
                         "do not match these images")
    pred = _binarize(s, _check_threshold(threshold, y.shape[1]), None)
    found = pred[rows, labels]
    out = {}
    for name, state in _STATES:
        mine = states == state
        out[f"recall_{name}"] = float(found[mine].mean()) if mine.any() else float("nan")
    within = same_theme()
    out["cross_theme_rate_pred"], pairs_pred = _cross_theme(pred, within)
    out["cross_theme_rate_true"], pairs_true = _cross_theme(y, within)
    out.update({f"num_{name}": int((states == state).sum()) for name, state in _STATES})
    out.update(num_pairs_pred=pairs_pred, num_pairs_true=pairs_true)
    return out


@dataclasses.dataclass
class SceneTruth:
    """The digits drawn in one split of a demo dataset.

    Args:
      split: the split's name (its record ids are ``demo-<split>-<index>``,
        ``demo_source.load``).
      num_scenes: the split's scene count.
      object_scene, object_label, object_state: ``[M]`` per drawn digit
        (``demo_source.DemoScenes``).
    """
    split: str
    num_scenes: int
    object_scene: np.ndarray
    object_label: np.ndarray
    object_state: np.ndarray

    def diagnostics(self, ids, y_true, scores, threshold=DEFAULT_THRESHOLD) -> dict:
        """``demo_diagnostics`` of the images ``ids`` (row ``r`` of
        ``y_true``/``scores`` is the record ``ids[r]``, any subset of the
        split). Raises ``ValueError`` when the ids are not distinct scenes
        of this split, or the digits do not match the labels."""
        prefix = f"demo-{self.split}-"
        index = np.array([int(i[len(prefix):]) if i.startswith(prefix)
                          and i[len(prefix):].isdigit() else -1 for i in ids], np.int64)
        if ((index < 0) | (index >= self.num_scenes)).any() or len(set(index)) != len(index):
            raise ValueError(f"the records are not distinct scenes of the demo's "
                             f"{self.split!r} split")
        row_of = np.full(self.num_scenes, -1, np.int64)
        row_of[index] = np.arange(len(index))
        rows = row_of[self.object_scene]
        mine = rows >= 0
        return demo_diagnostics(y_true, scores, rows[mine], self.object_label[mine],
                                self.object_state[mine], threshold=threshold)


def diagnostics_or_none(truth: Optional[SceneTruth], ids, y_true, scores,
                        threshold=DEFAULT_THRESHOLD, program: str = "mltf") -> Optional[dict]:
    """``truth.diagnostics(...)``; None when ``truth`` is None, or with a
    warning from ``program`` on stderr when the records are not its scenes
    (a dataset altered after ``make_tfrecords``)."""
    if truth is None:
        return None
    try:
        return truth.diagnostics(ids, y_true, scores, threshold=threshold)
    except ValueError as e:
        print(f"{program}: warning: no demo diagnostics: {e}", file=sys.stderr, flush=True)
        return None


def scene_truth(info, split: str) -> Optional[SceneTruth]:
    """The ``SceneTruth`` of ``split`` of the dataset ``info``
    (``mltf.data.schema.DatasetInfo``) when ``make_tfrecords --source=demo``
    wrote it, else None (another source, or a split the demo does not draw)."""
    if info.source != "demo":
        return None
    names = {f.name for f in dataclasses.fields(demo_source.Options)}
    options = demo_source.Options(**{k: v for k, v in info.arguments.items() if k in names})
    return _drawn(options).get(split)


@functools.lru_cache(maxsize=2)
def _drawn(options):
    # Once per process, without the pixels (the same digits, far faster).
    return {split: SceneTruth(split, len(s.labels), s.object_scene, s.object_label,
                              s.object_state)
            for split, s in demo_source.generate(options, render=False).items()}
