"""The files of a run folder, written so that a kill at any instant leaves
the old complete file or the new one (``mltf.utils.atomic``), and the epoch
logs (CSV rows, one TensorBoard event file per epoch) that ``RunState``
rewrites from its committed rows."""

import csv
import hashlib
import io
import os
import re
import shutil
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from mltf.utils import atomic

EVENTS_RE = re.compile(r"\.epoch-(\d{6})$")
TMP_PREFIX = atomic.TMP_PREFIX
PENDING_PREFIX = ".pending-"


# --- files ---------------------------------------------------------------------


def write_predictions(path: str, ids, labels, scores, decoded=None) -> None:
    """``predictions.npz``: a split's ``ids``, ``labels`` (uint8),
    ``scores`` (float32) and, when given, the ``decoded`` sets of set-level
    decoding (bool), in evaluation order, for paired comparisons."""
    extra = {} if decoded is None else {"decoded": np.asarray(decoded).astype(bool)}

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, ids=ids, labels=np.asarray(labels).astype(np.uint8),
                     scores=np.asarray(scores).astype(np.float32), **extra)

    atomic.atomic_write(path, write)


def pause(point: str) -> None:
    """Test hook: ``MLTF_TEST_PAUSE_WRITES=<seconds>`` sleeps inside each
    checkpoint write, so a test's kill lands there for sure; with
    ``MLTF_TEST_PAUSE_LOG=<file>`` each pause is logged as ``begin <point>``
    / ``end <point>`` (a trailing ``begin`` means the kill hit that write)."""
    seconds = os.environ.get("MLTF_TEST_PAUSE_WRITES")
    if not seconds:
        return
    log = os.environ.get("MLTF_TEST_PAUSE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"begin {point}\n")
    time.sleep(float(seconds))
    if log:
        with open(log, "a") as f:
            f.write(f"end {point}\n")


def atomic_write(path: str, write) -> None:
    """``mltf.utils.atomic.atomic_write`` with the test pause before the rename."""
    atomic.atomic_write(path, write, lambda: pause(os.path.basename(path)))


def atomic_text(path: str, text: str) -> None:
    atomic.atomic_text(path, text, lambda: pause(os.path.basename(path)))


def write_json(path: str, data) -> None:
    """The run state's JSON (sorted keys, no final newline), atomically."""
    atomic.write_json(path, data, sort_keys=True, end="",
                      before_rename=lambda: pause(os.path.basename(path)))


def save_model(model, path: str) -> None:
    """``model.save(path)``, atomically."""
    atomic_write(path, model.save)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_temporaries(*folders: str) -> None:
    """Removes files a killed write left (temporary and unpublished ones)."""
    for folder in folders:
        if folder and os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith((TMP_PREFIX, PENDING_PREFIX)):
                    path = os.path.join(folder, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


# --- logs ----------------------------------------------------------------------


def scalar(value):
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return float(array[0]) if array.size == 1 else None


def log_row(epoch: int, logs: Optional[Dict]) -> Dict:
    row = {"epoch": int(epoch)}
    for key, value in sorted((logs or {}).items()):
        value = scalar(value)
        if value is not None:
            row[key] = value
    return row


def csv_text(rows: List[Dict]) -> str:
    """CSVLogger's layout: ``epoch`` then the other keys, sorted."""
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["epoch", *keys], restval="",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def read_csv_rows(path: str) -> List[Dict]:
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                try:
                    row[key] = int(value) if key == "epoch" else float(value)
                except (TypeError, ValueError):
                    pass
            if "epoch" in row:
                rows.append(row)
    return rows


def write_epoch_events(tensorboard_dir: str, row: Dict) -> None:
    """One epoch's scalars as event files of their own
    (``train/``: ``epoch_<key>``; ``validation/``: ``epoch_<key>`` of
    ``val_<key>``, as Keras's TensorBoard callback names them), each written
    in a temporary folder and renamed into place."""
    epoch = int(row["epoch"])
    groups = {"train": {}, "validation": {}}
    for key, value in row.items():
        if key == "epoch":
            continue
        if key.startswith("val_"):
            groups["validation"]["epoch_" + key[4:]] = value
        else:
            groups["train"]["epoch_" + key] = value
    suffix = f".epoch-{epoch:06d}"
    for sub, scalars in groups.items():
        if not scalars:
            continue
        target = os.path.join(tensorboard_dir, sub)
        tmp = os.path.join(tensorboard_dir, f"{TMP_PREFIX}{os.getpid()}-{sub}{suffix}")
        shutil.rmtree(tmp, ignore_errors=True)
        writer = tf.summary.create_file_writer(tmp, filename_suffix=suffix)
        with writer.as_default():
            for tag, value in sorted(scalars.items()):
                tf.summary.scalar(tag, value, step=epoch)
        writer.flush()
        writer.close()
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(tmp):
            atomic.fsync_file(os.path.join(tmp, name))
            os.replace(os.path.join(tmp, name), os.path.join(target, name))
        os.rmdir(tmp)
        atomic.fsync_dir(target)


def sync_events(tensorboard_dir: str, rows: List[Dict]) -> None:
    """Makes the epoch event files match the committed rows exactly: files of
    uncommitted epochs removed, missing ones written."""
    remove_temporaries(tensorboard_dir)
    committed = {int(r["epoch"]): r for r in rows}
    present = set()
    for sub in ("train", "validation"):
        folder = os.path.join(tensorboard_dir, sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            m = EVENTS_RE.search(name)
            if not m:
                continue
            epoch = int(m.group(1))
            if epoch in committed:
                present.add(epoch)
            else:
                os.remove(os.path.join(folder, name))
    for epoch, row in sorted(committed.items()):
        if epoch not in present:
            write_epoch_events(tensorboard_dir, row)
