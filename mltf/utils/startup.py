"""What mltf's command-line tools do before TensorFlow is imported: TensorFlow
prints its start-up lines while it is imported, so the console is settled
before the first ``import tensorflow`` (or ``import keras``).

Each tool calls ``quiet_tensorflow`` at the top of its module when it runs as
a program, never when it is imported (a notebook or a test keeps
TensorFlow's own settings).
"""

import os
import sys
import tempfile

from absl import flags

# Lines TensorFlow 2.21 writes to stderr while it is imported on a CPU, before
# its C++ log level applies; each is noise for a user:
NOISE = (
    # absl's C++ logging saying that it is not set up yet (printed once per
    # TensorFlow shared library, hence twice): about the logger, not the run.
    "WARNING: All log messages before absl::InitializeLog() is called",
    # The notice that oneDNN kernels are on (the default on x86 since TF 2.9),
    # printed by both shared libraries at every start; nothing to act on (the
    # differences it warns of are float round-off).
    "oneDNN custom operations are on",
    # cpu_feature_guard's two-line note that a custom build could use more CPU
    # instructions: about TensorFlow's build, printed at every start.
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow with its start-up noise left out.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` to 1 unless the environment sets it: TF's
    C++ INFO lines go (``TFRecordDataset buffer_size is unspecified``, device
    and thread-pool notes, printed at every run), its warnings and errors
    stay. Then imports TensorFlow with the process's stderr (file descriptor
    2, which the C++ logging writes to) held in a temporary file, and writes
    back every line but those in ``NOISE``: a real import error or warning
    still shows, in order.

    Args:
      verbose: do nothing (TensorFlow's own start-up logging, INFO lines
        included); also nothing when TensorFlow is imported already.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            sys.stderr.write(without_noise(held.read().decode("utf-8", errors="replace")))
            sys.stderr.flush()


def without_noise(text: str) -> str:
    """``text`` without its lines that hold one of ``NOISE``."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(noise in line for noise in NOISE))


def bool_flag_in(name: str, argv) -> bool:
    """The value of the boolean flag ``--name`` in ``argv``, parsed as absl
    parses it (``--name``, ``--noname``, ``--name=false``), before the
    program's own flags are parsed; False when absent or malformed (the
    program's own parse then reports it).

    Args:
      name: the flag's name.
      argv: the command line, program name first.
    """
    values = flags.FlagValues()
    flags.DEFINE_bool(name, False, "", flag_values=values)
    try:
        values(list(argv), known_only=True)
    except flags.Error:
        return False
    return bool(values[name].value)
