"""What a training run prints per epoch: one compact line, read off the
epoch's logs (which TensorBoard and ``training_log.csv`` receive whole).

``mltf.train --verbose`` prints Keras's own per-epoch lines instead.
"""

import sys
import time
from typing import Mapping, Optional, Sequence

import keras

# The evaluation's figures on every line after the loss: (log key, label), in
# percent as in the final table.
VAL_FIGURES = (("val_mAP", "val mAP"), ("val_CF1", "C-F1"), ("val_OF1", "O-F1"))

# Erases the terminal line the progress bar is drawn on (ANSI "erase line").
_ERASE_LINE = "\r\x1b[2K"


def _number(value) -> str:
    return f"{float(value):.4g}"


def epoch_line(epoch: int, epochs: int, logs: Mapping, key_metrics: Sequence[str] = (),
               seconds: Optional[float] = None, phase: str = "") -> str:
    """The compact line of one epoch, e.g. ``epoch 3/15 - loss 0.2857 - val
    mAP 78.41, C-F1 62.10, O-F1 64.02 - 9.8 s``; a figure missing from
    ``logs`` (no evaluation this epoch) is left out.

    Args:
      epoch: the 0-based epoch (Keras's).
      epochs: the fit's number of epochs.
      logs: the epoch's logs.
      key_metrics: the method's own log keys (``Method.key_metrics``), shown
        after the common figures.
      seconds: the epoch's time, evaluation included.
      phase: the phase's name before ``epoch`` (``"pretrain"``); the main fit
        has none.
    """
    width = len(str(epochs))
    parts = [f"{phase + ' ' if phase else ''}epoch {epoch + 1:>{width}}/{epochs}"]
    if "loss" in logs:
        parts.append(f"loss {_number(logs['loss'])}")
    val = [f"{label} {100 * float(logs[key]):.2f}" for key, label in VAL_FIGURES if key in logs]
    if val:
        parts.append(", ".join(val))
    own = [f"{key} {_number(logs[key])}" for key in key_metrics if key in logs]
    if own:
        parts.append(", ".join(own))
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    return " - ".join(parts)


class EpochConsole(keras.callbacks.Callback):
    """Prints ``epoch_line`` at the end of each epoch; on a terminal, draws
    Keras's progress bar (``keras.utils.Progbar``) during the epoch and puts
    the line in its place, so each epoch leaves one line either way.

    Must come after the callbacks that add to the epoch's logs (the full-set
    evaluation, the method's).

    Args:
      key_metrics: the method's own log keys (``Method.key_metrics``), shown
        after the common figures and on the bar.
      progress_bar: draw the bar; None: when stdout is a terminal (a pipe or
        CI log would get one line per update).
      phase: the phase's name at the start of each line (``"pretrain"``).
    """

    def __init__(self, key_metrics: Sequence[str] = (), progress_bar: Optional[bool] = None,
                 phase: str = ""):
        super().__init__()
        self.key_metrics = tuple(key_metrics)
        self.progress_bar = sys.stdout.isatty() if progress_bar is None else progress_bar
        self.phase = phase
        self._bar = None
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()
        if self.progress_bar:
            # Keras's logs hold running means already: the bar shows them as they are.
            self._bar = keras.utils.Progbar(self.params.get("steps"), unit_name="step",
                                            stateless_metrics=set())

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        logs = logs or {}
        shown = [(key, float(logs[key])) for key in ("loss", *self.key_metrics) if key in logs]
        self._bar.update(batch + 1, shown, finalize=False)  # no newline: the line replaces it

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            sys.stdout.write(_ERASE_LINE)
            self._bar = None
        print(epoch_line(epoch, self.params["epochs"], logs or {}, self.key_metrics,
                         time.time() - self._start, self.phase), flush=True)
