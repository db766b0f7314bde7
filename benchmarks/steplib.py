"""Shared by the step benchmarks (``train_step.py``, ``wgan_step.py``,
``retdm_step.py``): their common flags, the ``--xla`` choice, the machine
line they print and the alternating timed rounds.

A script imports this as a sibling module (Python puts the script's folder
on ``sys.path``), calls ``define_flags`` and then
``flags.adopt_module_key_flags(steplib)``, so the flags still show in the
script's own ``--help``.
"""

import os
import time

from absl import flags


def define_flags(*, backbone, batch_size, num_labels, steps, rounds,
                 batch_help="Batch size.", labels_help="Labels.",
                 steps_help="Timed steps per round.", xla=True):
    """Defines ``--backbone``, ``--image_size`` (64), ``--batch_size``,
    ``--num_labels``, ``--steps``, ``--rounds`` and, with ``xla``, ``--xla``.

    Args:
      backbone: the default backbone (an ``mltf.backbones`` name).
      batch_size: the default batch size.
      num_labels: the default label count.
      steps: the default timed steps per round.
      rounds: the default number of alternating rounds.
      batch_help: what the batch is (global, the generator's, ...).
      labels_help: ``--num_labels``' help.
      steps_help: ``--steps``' help.
      xla: define ``--xla`` (``true``, ``false`` or ``auto``) for both arms;
        a script that measures XLA on and off passes False.
    """
    flags.DEFINE_string("backbone", backbone, "Backbone (mltf.backbones).")
    flags.DEFINE_integer("image_size", 64, "Image side.")
    flags.DEFINE_integer("batch_size", batch_size, batch_help)
    flags.DEFINE_integer("num_labels", num_labels, labels_help)
    flags.DEFINE_integer("steps", steps, steps_help)
    flags.DEFINE_integer("rounds", rounds, "Alternating rounds.")
    if xla:
        flags.DEFINE_string("xla", "auto", "XLA for both: true, false or auto (off on CPU).")


def resolve_xla(value: str) -> bool:
    """``--xla``'s text as ``mltf.core.steps.resolve_xla`` decides it
    (anything but true/false means auto)."""
    from mltf.core import steps
    return steps.resolve_xla({"true": True, "false": False}.get(value.lower(), "auto"))


def classifier(backbone, image_size, num_labels, **backbone_kwargs):
    """A built ``mltf.models.MultiLabelClassifier`` on ``build_backbone(
    backbone, (image_size, image_size, 3), **backbone_kwargs)``, seeded with 0
    so that every arm of a benchmark starts from the same weights."""
    import keras
    from mltf import backbones, models
    keras.utils.set_random_seed(0)
    model = models.MultiLabelClassifier(
        backbones.build_backbone(backbone, (image_size, image_size, 3), **backbone_kwargs),
        num_labels)
    model.build((None, image_size, image_size, 3))
    return model


def machine() -> str:
    """``tensorflow <version>, <n> cores, GPUs <n>``: the first words of
    every result line, so figures from different machines are told apart."""
    import tensorflow as tf
    return (f"tensorflow {tf.__version__}, {os.cpu_count()} cores, GPUs "
            f"{len(tf.config.list_physical_devices('GPU'))}")


def time_rounds(runs, rounds, steps):
    """Seconds per step of each run in each round: ``{name: [s per round]}``.

    Args:
      runs: ``{name: (model, dataset)}``, compiled and warmed up.
      rounds: rounds; each fits every model for ``steps`` steps in turn,
        in order in even rounds and reversed in odd ones, so the drift of a
        shared machine falls on every run alike.
      steps: steps per fit.
    """
    times = {name: [] for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(reversed(list(runs)))):
            model, dataset = runs[name]
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times[name].append((time.perf_counter() - start) / steps)
    return times
