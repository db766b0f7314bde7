"""Files that are replaced whole or not at all: written under a temporary
name in the target's folder, flushed to disk and renamed into place, so a
reader (or a run killed mid-write) sees the old complete file or the new
one, never a piece. Used by the dataset writer, the run state and the JSON
reports of the CLIs."""

import json
import os

TMP_PREFIX = ".tmp-"


def fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders
    finally:
        os.close(fd)


def atomic_write(path: str, write, before_rename=None) -> None:
    """Calls ``write(tmp_path)`` with a temporary path in ``path``'s folder
    (same extension, so Keras accepts it), flushes it and renames it to
    ``path``; ``before_rename()``, if given, runs just before the flush.

    Args:
      path: the file to replace.
      write: writes the whole file to the path it is given.
      before_rename: optional hook (a test pauses there).
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{name}")
    try:
        write(tmp)
        if before_rename is not None:
            before_rename()
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(folder)


def atomic_text(path: str, text: str, before_rename=None) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)
    atomic_write(path, write, before_rename)


def write_json(path: str, data, *, sort_keys: bool = False, end: str = "\n",
               before_rename=None) -> None:
    """``data`` as JSON, indented by 2, then ``end``, replacing ``path`` whole.

    Args:
      path: the file to replace.
      data: anything ``json.dumps`` takes (NaN is written as ``NaN``).
      sort_keys: sort object keys; off by default, so reports keep their
        documented key order and per-class entries stay in label order.
      end: appended after the JSON text (a final newline by default).
      before_rename: as in ``atomic_write``.
    """
    atomic_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + end, before_rename)
