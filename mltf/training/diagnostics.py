"""The co-occurrence heat maps of ``mltf.metrics.dependency_diagnostics`` as
a TensorBoard image: ``P(j | i)`` of the predicted label sets (left) beside
that of the true sets (right), row ``i``, column ``j``, label 0 at the top
left.

Colours run from dark violet (0) through teal to yellow (1), five anchors of
matplotlib's viridis interpolated linearly (numpy only: drawn every epoch,
where a matplotlib figure would cost seconds);
an undefined row (a label no set holds) is mid grey, and a white band
separates the two maps.
"""

import numpy as np
import tensorflow as tf

_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98],
                     [253, 231, 37]], np.float64)
_UNDEFINED = (128, 128, 128)
# Each map is drawn about this many pixels wide: one pixel per label pair
# would be invisible for a dozen labels.
_TARGET_SIDE = 240


def heat_map(matrix, cell: int = 1) -> np.ndarray:
    """uint8 RGB ``[C * cell, C * cell, 3]`` of a ``[C, C]`` matrix of values
    in [0, 1] (clipped; NaN drawn grey), each entry a ``cell`` x ``cell``
    square."""
    m = np.asarray(matrix, np.float64)
    undefined = np.isnan(m)
    x = np.clip(np.nan_to_num(m, nan=0.0), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    low = np.minimum(x.astype(int), len(_VIRIDIS) - 2)
    frac = (x - low)[..., None]
    rgb = (1 - frac) * _VIRIDIS[low] + frac * _VIRIDIS[low + 1]
    rgb[undefined] = _UNDEFINED
    rgb = np.round(rgb).astype(np.uint8)
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)


def cooccurrence_image(pred, true) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]``: the heat map of ``pred`` beside that of
    ``true`` (both ``[C, C]``), with a white band between."""
    c = len(pred)
    cell = max(1, _TARGET_SIDE // c)
    band = np.full((c * cell, max(2, cell // 2), 3), 255, np.uint8)
    return np.concatenate([heat_map(pred, cell), band, heat_map(true, cell)], axis=1)


class CooccurrenceImages:
    """Writes one co-occurrence image per call, at the epoch as its step, to
    TensorBoard event files in ``log_dir`` (tag ``cooccurrence``).

    Not part of the run's kill-safe state (``run_state`` rewrites only the
    scalars of committed epochs): after a kill and resume, an epoch that was
    being evaluated may have an image twice (TensorBoard shows the last) and
    one that was never committed keeps its image.

    Args:
      log_dir: the event files' folder (e.g. ``<run>/tensorboard/diagnostics``).
    """

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self._writer = None

    def write(self, diagnostics: dict, step: int) -> None:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        image = cooccurrence_image(diagnostics["cooccurrence_pred"],
                                   diagnostics["cooccurrence_true"])
        with self._writer.as_default():
            tf.summary.image("cooccurrence", image[None], step=step,
                             description="P(j | i), row i, column j: predicted label sets "
                                         "(left) beside the true sets (right); grey: a label "
                                         "no set holds")
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
