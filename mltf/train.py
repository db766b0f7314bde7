r"""Trains a multi-label classifier from a gin config.

  python -m mltf.train --config=configs/demo.gin
  python -m mltf.train --config=configs/coco_vgg16.gin \
      --gin_bindings='pipelines.InputConfig.data_dir = "data/coco2014"' \
      --model_dir=runs/coco_vgg16

Everything about the run is bound in gin: the entry point ``mltf.train``,
the backbone ``mltf.build_backbone``, the inputs ``train/`` and ``eval/``
``pipelines.InputConfig``, optimizers (``@keras.optimizers.Adam()``), extra
callbacks (``@keras.callbacks.ReduceLROnPlateau()``). Flags only name the
config files, extra bindings and the run folder, and say how much the console
shows: a flag never passes a value that gin binds, so the .gin file is never
silently overridden.

The console (``mltf.training.console``): one compact line per epoch (loss,
selection-split mAP, C-F1, O-F1, the method's ``key_metrics``, seconds), on a
terminal after Keras's progress bar, then the full metric table. ``--verbose``:
Keras's own per-epoch lines with every metric, and TensorFlow's start-up
logging (``mltf.utils.startup`` leaves it out otherwise). TensorBoard and
``training_log.csv`` get every figure either way.

The run folder (``--model_dir``, default ``runs/<config name>``) receives:

- ``operative_config.gin``: every gin value the run used;
- ``tensorboard/``: losses, learning rate and the full-set evaluation
  metrics each epoch, and the operative config as text; ``final/``: the
  final evaluation's figures (``mltf.training.pictures``: precision-recall
  curves, AP per class and, for images, the evaluation split's first images
  with their labels at the saved thresholds) and per-class PR curves;
- ``training_log.csv``: one row per epoch;
- ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (by
  ``checkpoint_metric``);
- ``backup/``: the committed epoch states (``mltf.training.run_state``), there while
  the run is unfinished; a run killed at any instant and started again with
  the same command resumes at the start of the epoch it was in;
- ``model.keras``: the final model (the last epoch's weights, or with
  ``final = "best"`` those of ``checkpoints/best.keras``), with thresholds
  tuned on the selection split when ``tune_thresholds`` (``threshold_mode``:
  per-class F1, F-beta, precision or recall target, or one global O-F1
  threshold);
- ``metrics.json``: the final evaluation of ``model.keras`` on the
  evaluation split: ``metrics`` at threshold 0.5 and, when
  ``tune_thresholds``, ``metrics_tuned`` at the per-class ``thresholds``
  (both ``mltf.metrics.compute_all`` dicts) and ``threshold_choice`` (the
  mode, its beta or target, the labels whose target was not reached);
  ``metrics_tuned`` is optimistic when ``select_fraction = 0`` (tuned on
  that same split). ``final``: the epoch used (``choice``, ``epoch`` as in
  ``training_log.csv``, for ``"best"`` the checkpoint ``metric`` and
  ``value``). On a dataset of ``make_tfrecords --source=demo`` also
  ``demo`` and ``demo_tuned`` (``mltf.metrics.demo``: recall of normal,
  faint and occluded digits, predicted pairs across themes), also logged
  each epoch on the selection split (``val_recall_faint``, ...).

Under MultiWorkerMirroredStrategy (``TF_CONFIG``) only the chief writes the
run folder; the other workers write into temporary folders of their own.
"""

import os
import sys

from mltf.utils import startup

if __name__ == "__main__":
    # Before the imports below: TensorFlow prints its start-up lines at import,
    # before absl has parsed --verbose.
    startup.quiet_tensorflow(verbose=startup.bool_flag_in("verbose", sys.argv))

import gin  # noqa: E402
from absl import app, flags  # noqa: E402

from mltf.training.gin_setup import in_scope  # noqa: E402,F401  (registers Keras externals)
from mltf.training.run_dir import RUN_DIRS, RUN_FILES, prepare_run_dir  # noqa: E402,F401
from mltf.training.trainer import train  # noqa: E402,F401  (gin's mltf.train)

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings, e.g. 'mltf.train.epochs = 2'.")
flags.DEFINE_string("model_dir", None, "Run folder (default: runs/<first config's name>).")
flags.DEFINE_bool("overwrite", False,
                  "Replace a finished run in --model_dir (an interrupted one is resumed).")
flags.DEFINE_bool("verbose", False,
                  "Keras's own output (every metric of every epoch) instead of one compact "
                  "line per epoch, and TensorFlow's start-up logging.")


def main(argv):
    del argv
    if not FLAGS.config:
        raise app.UsageError("--config is required (e.g. --config=configs/demo.gin)")
    model_dir = FLAGS.model_dir or os.path.join(
        "runs", os.path.splitext(os.path.basename(FLAGS.config[0]))[0])
    for path in FLAGS.config:
        if not os.path.isfile(path):
            print(f"mltf.train: error: config file not found: {path}", file=sys.stderr)
            return 2
    from mltf.training import gin_setup
    gin_setup.register_all()
    try:
        gin.parse_config_files_and_bindings(FLAGS.config, FLAGS.gin_bindings)
    except (ValueError, KeyError, TypeError, SyntaxError) as e:
        print(f"mltf.train: error in the gin config: {e}", file=sys.stderr)
        return 2
    import tensorflow as tf
    from mltf.core import distribute
    from mltf.methods import SettingsError
    from mltf.training import run_state
    try:
        kind = gin.query_parameter("mltf.train.strategy")
    except ValueError:
        kind = "auto"  # train's default
    try:
        distribute.make_strategy(kind)  # before gin builds the optimizers
    except (ValueError, RuntimeError) as e:
        print(f"mltf.train: error: {e}", file=sys.stderr)
        return 2
    try:
        # Only the chief of a multi-worker run touches the run folder.
        if distribute.tf_config_is_chief():
            state = prepare_run_dir(model_dir, FLAGS.overwrite)
            if state == "resume":
                print(f"mltf.train: resuming the interrupted run in {model_dir}", flush=True)
        train(model_dir, verbose=FLAGS.verbose)
    except SettingsError as e:
        print(f"mltf.train: error in the gin config: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, FloatingPointError,
            run_state.RunStateError) as e:
        print(f"mltf.train: error: {e}", file=sys.stderr)
        return 1
    except (tf.errors.UnavailableError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError, tf.errors.CancelledError) as e:
        if not os.environ.get("TF_CONFIG"):
            raise
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        print(f"mltf.train: error: another worker of this multi-worker run stopped "
              f"({type(e).__name__}: {first}). The run folder holds every epoch "
              "finished so far: start all workers again with the same command to "
              "resume.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
