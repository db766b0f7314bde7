"""A run's state on disk, safe against a kill at any instant.

What trusted checkpointing does (tf.train.CheckpointManager, Orbax): every
file is written under a temporary name in its own folder, flushed to disk and
renamed into place, so a reader sees the old complete file or the new one,
never a piece; one small file commits an epoch, and everything else is either
named by a committed state or thrown away on resume.

At the end of epoch ``n`` (``n`` epochs done) ``RunState`` writes, in order:

1. ``backup/weights-<n>.weights.h5``: the weights of the fit model and of
   its optimizers (Keras's ``save_weights``; for WGAN-gp both optimizers and
   the critic, so the generator-update counter that keys the noise; for RETDM
   the memory bank and its age);
2. ``checkpoints/.pending-last-<n>.keras`` and, when ``checkpoint_metric``
   improved, ``.pending-best-<n>.keras`` (with the averaged weights when the
   optimizer keeps an average, ``mltf.training.ema``; the weights file of 1.
   holds the raw ones and the averages);
3. ``backup/state-<n>.json``, the commit: the epoch count, the weights file's
   size and SHA-256, every epoch's log row, the best value so far, the
   callbacks' counters (``ReduceLROnPlateau``, ``EarlyStopping``) and the
   pending files to publish;
4. after the commit: the pending files renamed to ``last.keras`` /
   ``best.keras``, ``training_log.csv`` rewritten from the committed rows,
   the epoch's TensorBoard scalars as one event file of its own
   (``*.epoch-<n>``), and states older than the newest ``keep`` removed.

On resume the newest state that parses and whose weights file has the
recorded size and hash and loads is used, with one line saying what was found
and what is used; a kill between steps 3 and 4 is completed (pending files
published, the CSV and the epoch's event file written), and files of an
uncommitted epoch are removed, so the CSV log and TensorBoard hold each
finished epoch exactly once and ``best.keras`` is the best of all epochs so
far. Under MultiWorkerMirroredStrategy only the chief touches the run folder:
it picks the state, loads it, and broadcasts the state and every variable to
the other workers (``mltf.core.distribute.broadcast_from_chief``), so those need
no copy of the run folder.
"""

import json
import os
import re
import shutil
import time
from typing import Dict, List, Optional

import keras
import numpy as np

from mltf.training.ema import averaged_weights
from mltf.training.model_state import (CALLBACK_STATE, callback_states,  # noqa: F401
                                       optimizers_of, set_callback_states,
                                       state_variables, update_count)
from mltf.training.run_files import (EVENTS_RE, PENDING_PREFIX, TMP_PREFIX, pause,  # noqa: F401
                                     atomic_text, atomic_write, csv_text, log_row,
                                     read_csv_rows, remove_temporaries, save_model, sha256,
                                     sync_events, write_epoch_events, write_json)
from mltf.utils import atomic

FORMAT = 1
STATE_RE = re.compile(r"^state-(\d{6})\.json$")
WEIGHTS_RE = re.compile(r"^weights-(\d{6})\.weights\.h5$")
# Keras 3's BackupAndRestore, used by mltf before this module.
LEGACY_WEIGHTS, LEGACY_META = "latest.weights.h5", "training_metadata.json"


class RunStateError(Exception):
    """A run folder's saved state cannot be used; the message says what was
    found and what to do."""


# --- the callback ------------------------------------------------------------------


class RunState(keras.callbacks.Callback):
    """Commits the run's state at each epoch end and restores it on resume
    (see the module docstring). Must be the *last* callback: it records the
    logs that the others (evaluation, learning rate) added.

    Args:
      backup_dir: folder of the committed states (removed by ``close``).
      log_path: the CSV log, rewritten from the committed rows.
      tensorboard_dir: TensorBoard folder of the epoch scalars (None: none).
      checkpoint_dir: where ``last.keras`` and ``best.keras`` go (None: none).
      checkpoint_metric: log key that picks ``best.keras``.
      mode: ``"max"`` or ``"min"`` for ``checkpoint_metric``.
      callbacks: the run's other callbacks; their counters (``wait``,
        ``best``, ...) are saved and restored.
      keep: committed states kept (the newest ``keep``; at least 1).
      writer: whether this process writes (the chief); other workers of a
        multi-worker run keep their state in memory only.
      strategy: the run's ``tf.distribute`` strategy (for the broadcast).
      name: what the one-line resume message calls this phase.
    """

    def __init__(self, backup_dir: str, log_path: str, tensorboard_dir: Optional[str] = None,
                 checkpoint_dir: Optional[str] = None, checkpoint_metric: str = "val_mAP",
                 mode: str = "max", callbacks=(), keep: int = 2, writer: bool = True,
                 strategy=None, name: str = "run"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.backup_dir = backup_dir
        self.log_path = log_path
        self.tensorboard_dir = tensorboard_dir
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_metric = checkpoint_metric
        self.mode = mode
        self.callbacks = list(callbacks)
        self.keep = max(1, int(keep))
        self.writer = bool(writer)
        self.strategy = strategy
        self.name = name
        self.rows: List[Dict] = []
        self.best: Optional[Dict] = None
        self.epochs_done = 0
        self._callback_states: Dict = {}

    # --- resume -----------------------------------------------------------

    def _candidates(self):
        """(epoch, state dict or None, weights path, problem or None) for
        every state in the backup folder, newest first, plus ignored names."""
        if not os.path.isdir(self.backup_dir):
            return [], []
        found, ignored = [], []
        names = sorted(os.listdir(self.backup_dir))
        for name in names:
            path = os.path.join(self.backup_dir, name)
            m = STATE_RE.match(name)
            if m:
                found.append(self._check_state(int(m.group(1)), path))
            elif name == LEGACY_WEIGHTS:
                found.append(self._check_legacy())
            elif not (WEIGHTS_RE.match(name) or name.startswith(TMP_PREFIX)
                      or name == LEGACY_META or name.endswith(".invalid")
                      or os.path.isdir(path)):
                ignored.append(name)
        found.sort(key=lambda c: c[0], reverse=True)
        return found, ignored

    def _check_state(self, epoch, path):
        name = os.path.basename(path)
        try:
            with open(path) as f:
                state = json.load(f)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError(f"not an mltf run state (format {FORMAT})")
            if int(state["epoch"]) != epoch or len(state["rows"]) != epoch:
                raise ValueError("its epoch count does not match its name and rows")
            weights = os.path.join(self.backup_dir, state["weights"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return epoch, None, None, f"{name}: unreadable ({e})"
        if not os.path.isfile(weights):
            return epoch, None, None, f"{name}: its weights file {state['weights']} is missing"
        size, recorded = os.path.getsize(weights), state.get("weights_size")
        if size != recorded:
            recorded = f"{recorded:,}" if isinstance(recorded, int) else repr(recorded)
            return epoch, None, None, (f"{name}: {state['weights']} has {size:,} bytes, "
                                       f"the state recorded {recorded}")
        if sha256(weights) != state.get("weights_sha256"):
            return epoch, None, None, f"{name}: {state['weights']} does not match its SHA-256"
        return epoch, state, weights, None

    def _check_legacy(self):
        """A Keras BackupAndRestore backup from an earlier mltf version."""
        meta = os.path.join(self.backup_dir, LEGACY_META)
        try:
            with open(meta) as f:
                epoch = int(json.load(f)["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return -1, None, None, f"{LEGACY_WEIGHTS}: no readable {LEGACY_META} ({e})"
        rows = [r for r in read_csv_rows(self.log_path) if r["epoch"] < epoch]
        if len(rows) != epoch:
            return epoch, None, None, (f"{LEGACY_WEIGHTS}: {len(rows)} rows of "
                                       f"{os.path.basename(self.log_path)} for {epoch} epochs")
        state = {"format": FORMAT, "epoch": epoch, "weights": LEGACY_WEIGHTS, "rows": rows,
                 "best": None, "callbacks": {}, "publish": [], "legacy": True}
        return epoch, state, os.path.join(self.backup_dir, LEGACY_WEIGHTS), None

    def restore(self, model) -> int:
        """Loads the newest usable state into ``model`` (built and compiled)
        and returns the number of epochs it had finished (0 for a new run).

        Raises:
          RunStateError: states were found and none is usable.
        """
        chosen, message = None, None
        if self.writer:
            chosen, message = self._restore_local(model)
        chosen = self._share(chosen)
        if chosen is None:
            self._begin_fresh()
            return 0
        if self.strategy is not None:
            from mltf.core import distribute
            distribute.broadcast_variables(self.strategy, state_variables(model))
        self.rows = [dict(r) for r in chosen["rows"]]
        self.best = chosen.get("best")
        if self.best is None and chosen.get("legacy"):
            self.best = self._best_of(self.rows)
        self._callback_states = chosen.get("callbacks", {})
        self.epochs_done = int(chosen["epoch"])
        if self.writer:
            # Temporaries of writes the kill cut off (the CSV log, model.keras,
            # metrics.json, the operative config live beside the log).
            remove_temporaries(os.path.dirname(os.path.abspath(self.log_path)))
            self._publish(chosen.get("publish", []))
            self._write_logs(all_events=True)
            print(f"mltf.train: {message}; {update_count(model):,} optimizer updates so far",
                  flush=True)
        return self.epochs_done

    def _restore_local(self, model):
        candidates, ignored = self._candidates()
        if not candidates:
            if ignored:
                print(f"mltf.train: {self.backup_dir} holds no saved state; ignored: "
                      f"{', '.join(ignored)}", flush=True)
            return None, None
        problems = []
        for epoch, state, weights, problem in candidates:
            if state is not None:
                try:
                    model.load_weights(weights)
                except Exception as e:  # h5py, Keras: any failure means unusable
                    problem = (f"{os.path.basename(weights)}: does not load "
                               f"({type(e).__name__}: {str(e)[:200]})")
                    state = None
            if state is None:
                problems.append(problem)
                continue
            note = f"resuming the {self.name} after epoch {epoch} " \
                   f"({os.path.basename(self.backup_dir)}/{os.path.basename(weights)})"
            if problems:
                note += "; skipped: " + "; ".join(problems)
            if ignored:
                note += "; ignored: " + ", ".join(ignored)
            self._discard_newer(epoch)
            return state, note
        raise RunStateError(
            f"{self.backup_dir} holds saved states but none can be used: "
            + "; ".join(problems) + ". Nothing was changed. Move the damaged files "
            "away (or delete the backup folder to start the epochs over), or pass "
            "--overwrite to start a new run")

    def _discard_newer(self, epoch):
        """States newer than the one used failed their checks: renamed
        ``*.invalid`` (kept for a look, never tried again); weights files of
        uncommitted epochs and temporaries removed."""
        committed = set()
        for name in os.listdir(self.backup_dir):
            m = STATE_RE.match(name)
            if m and int(m.group(1)) > epoch:
                path = os.path.join(self.backup_dir, name)
                os.replace(path, path + ".invalid")
            elif m:
                committed.add(int(m.group(1)))
        for name in os.listdir(self.backup_dir):
            m = WEIGHTS_RE.match(name)
            if (m and int(m.group(1)) not in committed) or name.startswith(TMP_PREFIX):
                os.remove(os.path.join(self.backup_dir, name))

    def _share(self, chosen):
        """The chief's choice, on every worker of a multi-worker run."""
        if self.strategy is None:
            return chosen
        from mltf.core import distribute
        if not distribute.is_multi_worker(self.strategy):
            return chosen
        data = json.dumps(chosen).encode() if self.writer else b""
        data = distribute.broadcast_bytes(self.strategy, data)
        return json.loads(data.decode())

    def _begin_fresh(self):
        self.rows, self.best, self.epochs_done, self._callback_states = [], None, 0, {}
        if self.writer:
            os.makedirs(self.backup_dir, exist_ok=True)
            remove_temporaries(self.backup_dir, self.checkpoint_dir,
                               os.path.dirname(os.path.abspath(self.log_path)))
            if os.path.exists(self.log_path):
                os.remove(self.log_path)  # rows of no committed epoch
            if self.tensorboard_dir:
                sync_events(self.tensorboard_dir, [])

    def on_train_begin(self, logs=None):
        # After the other callbacks' on_train_begin, which reset their counters.
        set_callback_states(self.callbacks, self._callback_states)

    # --- commit -----------------------------------------------------------

    def _best_of(self, rows):
        values = [(r[self.checkpoint_metric], r["epoch"]) for r in rows
                  if np.isfinite(r.get(self.checkpoint_metric, np.nan))]
        if not values:
            return None
        pick = min(values) if self.mode == "min" else max(values)
        return {"metric": self.checkpoint_metric, "value": pick[0], "epoch": pick[1]}

    def _improved(self, value) -> bool:
        if value is None or not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best["value"] if self.mode == "min" else value > self.best["value"]

    def on_epoch_end(self, epoch, logs=None):
        row = log_row(epoch, logs)
        done = epoch + 1
        value = row.get(self.checkpoint_metric)
        improved = self._improved(value)
        self.rows.append(row)
        if improved:
            self.best = {"metric": self.checkpoint_metric, "value": value, "epoch": epoch}
        self.epochs_done = done
        if not self.writer:
            return
        weights_name = f"weights-{done:06d}.weights.h5"
        weights = os.path.join(self.backup_dir, weights_name)
        atomic_write(weights, self.model.save_weights)
        publish = []
        if self.checkpoint_dir:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            outputs = [("last", "last.keras")] + ([("best", "best.keras")] if improved else [])
            for tag, final in outputs:
                pending = f"{PENDING_PREFIX}{tag}-{done:06d}.keras"
                path = os.path.join(self.checkpoint_dir, pending)
                with averaged_weights(self.model):  # the weights the evaluation scored
                    self.model.save(path)
                pause(pending)
                atomic.fsync_file(path)
                publish.append([pending, final])
        state = {"format": FORMAT, "epoch": done, "weights": weights_name,
                 "weights_size": os.path.getsize(weights),
                 "weights_sha256": sha256(weights), "rows": self.rows, "best": self.best,
                 "callbacks": callback_states(self.callbacks), "publish": publish,
                 "time": time.time()}
        write_json(os.path.join(self.backup_dir, f"state-{done:06d}.json"), state)  # commit
        self._publish(publish)
        self._write_logs(all_events=False)
        self._prune(done)

    def _publish(self, publish):
        if not self.checkpoint_dir:
            return
        for pending, final in publish:
            src = os.path.join(self.checkpoint_dir, pending)
            if os.path.exists(src):
                os.replace(src, os.path.join(self.checkpoint_dir, final))
        atomic.fsync_dir(self.checkpoint_dir)
        remove_temporaries(self.checkpoint_dir)

    def _write_logs(self, all_events: bool):
        atomic_text(self.log_path, csv_text(self.rows))
        if self.tensorboard_dir:
            pause("epoch events")  # between two writes: the CSV has the epoch, TensorBoard not yet
            if all_events:
                sync_events(self.tensorboard_dir, self.rows)
            else:
                write_epoch_events(self.tensorboard_dir, self.rows[-1])

    def _prune(self, done):
        states = sorted(int(m.group(1)) for m in map(STATE_RE.match, os.listdir(self.backup_dir))
                        if m)
        keep = set(states[-self.keep:])
        for name in os.listdir(self.backup_dir):
            m = STATE_RE.match(name) or WEIGHTS_RE.match(name)
            if m and int(m.group(1)) not in keep:
                os.remove(os.path.join(self.backup_dir, name))
            elif name in (LEGACY_WEIGHTS, LEGACY_META):
                os.remove(os.path.join(self.backup_dir, name))

    def close(self):
        """Removes the backup folder (the run's outputs are written)."""
        if self.writer and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)
