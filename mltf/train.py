r"""Trains a multi-label classifier from a gin config.

  python -m mltf.train --config=configs/demo.gin
  python -m mltf.train --config=configs/coco_vgg16.gin \
      --gin_bindings='pipelines.InputConfig.data_dir = "data/coco2014"' \
      --model_dir=runs/coco_vgg16

Everything about the run is bound in gin: the entry point ``mltf.train``,
the backbone ``mltf.build_backbone``, the inputs ``train/`` and ``eval/``
``pipelines.InputConfig``, optimizers (``@keras.optimizers.Adam()``), extra
callbacks (``@keras.callbacks.ReduceLROnPlateau()``). Flags only name the
config files, extra bindings and the run folder: a flag never passes a value
that gin binds, so the .gin file is never silently overridden.

The run folder (``--model_dir``, default ``runs/<config name>``) receives:

- ``operative_config.gin``: every gin value the run used;
- ``tensorboard/``: losses, learning rate and the full-set evaluation
  metrics each epoch, and the operative config as text;
- ``training_log.csv``: one row per epoch;
- ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (by
  ``checkpoint_metric``);
- ``backup/``: the committed epoch states (``mltf.run_state``), there while
  the run is unfinished; a run killed at any instant and started again with
  the same command resumes at the start of the epoch it was in;
- ``model.keras``: the final model, with per-class thresholds tuned on the
  evaluation split when ``tune_thresholds``;
- ``metrics.json``: the final evaluation (keys: ``mltf.metrics``).

Under MultiWorkerMirroredStrategy (``TF_CONFIG``) only the chief writes the
run folder; the other workers write into temporary folders of their own.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings, e.g. 'mltf.train.epochs = 2'.")
flags.DEFINE_string("model_dir", None, "Run folder (default: runs/<first config's name>).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --model_dir (an interrupted one is resumed).")

# What a run writes; --overwrite removes exactly these, nothing else.
RUN_FILES = ("metrics.json", "model.keras", "training_log.csv", "operative_config.gin",
             "pretrained.keras", "pretrain_log.csv")
RUN_DIRS = ("checkpoints", "tensorboard")


def prepare_run_dir(model_dir: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` (an interrupted run left a backup) or
    ``"overwrite"``; raises FileExistsError for a finished run without
    ``overwrite``."""
    if os.path.isdir(os.path.join(model_dir, "backup")):
        return "resume"
    finished = [n for n in RUN_FILES + RUN_DIRS if os.path.exists(os.path.join(model_dir, n))]
    if not finished:
        return "new"
    if not overwrite:
        raise FileExistsError(
            f"{model_dir} already holds a run ({', '.join(finished)}); pass "
            "--overwrite to replace it or choose another --model_dir")
    for name in finished:
        path = os.path.join(model_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return "overwrite"


def _register_externals():
    """Keras objects that configs may reference (``@keras.optimizers.Adam()``)."""
    import keras
    for module, names in (
            ("keras.optimizers", ("Adam", "AdamW", "SGD", "RMSprop")),
            ("keras.optimizers.schedules", ("CosineDecay", "ExponentialDecay",
                                            "PiecewiseConstantDecay")),
            ("keras.callbacks", ("ReduceLROnPlateau", "EarlyStopping"))):
        obj = keras
        for part in module.split(".")[1:]:
            obj = getattr(obj, part)
        for name in names:
            try:
                gin.external_configurable(getattr(obj, name), module=module)
            except ValueError:
                pass  # registered already (module imported twice)


_register_externals()


def in_scope(optimizer):
    """A copy of ``optimizer`` made in the current strategy scope: gin builds
    the configured optimizers before ``train`` runs, outside the scope, and an
    optimizer keeps the strategy it was made in."""
    import keras
    return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))


@gin.configurable(module="mltf", denylist=["model_dir"])
def train(model_dir: str,
          epochs: int = 10,
          steps_per_epoch: Optional[int] = None,
          optimizer=None,
          learning_rate: Optional[float] = None,
          dropout: float = 0.0,
          label_smoothing: float = 0.0,
          xla="auto",
          mixed_precision: Optional[str] = None,
          strategy: str = "auto",
          checkpoint_metric: str = "val_mAP",
          eval_every: int = 1,
          backup_keep: int = 2,
          callbacks: Sequence = (),
          tune_thresholds: bool = True,
          seed: int = 0,
          verbose="auto",
          method: str = "bce",
          initial_model: Optional[str] = None,
          pretrain_epochs: int = 0,
          critic_optimizer=None,
          generator_optimizer=None):
    """Trains the BCE classifier; returns the final evaluation metrics.

    Args:
      model_dir: run folder (the ``--model_dir`` flag; never bound in gin).
      epochs: training epochs.
      steps_per_epoch: steps per epoch (default: one pass over the training
        split, ``num_examples // batch_size``).
      optimizer: a Keras optimizer (``@keras.optimizers.Adam()``); default
        Adam with ``learning_rate``.
      learning_rate: Adam's learning rate when ``optimizer`` is not given
        (default 1e-3); binding both is an error.
      dropout, label_smoothing: see ``mltf.models.MultiLabelClassifier``.
      xla: XLA-compile the per-replica step (``mltf.core.steps``); ``"auto"``: on
        GPUs, off on CPUs, where it measured slower.
      mixed_precision: None, ``"mixed_float16"`` (GPU) or
        ``"mixed_bfloat16"`` (TPU, recent CPUs).
      strategy: ``auto``, ``default``, ``mirrored``, ``multi_worker`` or
        ``cpu:N`` (``mltf.core.distribute``).
      checkpoint_metric: log key that picks ``checkpoints/best.keras``
        (``val_<metric key>``; ``val_loss`` is minimised, others maximised).
      eval_every: full-set evaluation every this many epochs.
      backup_keep: committed epoch states kept in ``backup/`` (the newest;
        an older one is the fallback if the newest is damaged; 1 halves the
        disk a large model's backup takes). A killed run resumes at the start
        of the epoch it was in, from the state that epoch started with
        (``mltf.run_state``).
      callbacks: extra Keras callbacks (e.g.
        ``@keras.callbacks.ReduceLROnPlateau()``, which can monitor
        ``val_loss``: the full-set evaluation logs it).
      tune_thresholds: tune per-class thresholds on the evaluation split
        (maximising each class's F1) and save them with ``model.keras``.
      seed: seed of Keras's initialisers and dropout.
      verbose: Keras's progress output (``"auto"``: a bar on a terminal).
      method: ``"bce"`` (the baseline), ``"wgan_gp"`` (seed 000: the
        classifier trained against a conditional WGAN-gp critic; critic and
        loss settings in ``mltf.build_critic`` / ``mltf.build_wgan``) or
        ``"retdm"`` (seed 001: two-way metric and label reconstruction, in
        three stages; settings in ``mltf.build_retdm``, ``optimizer`` for
        all stages, f_I is the backbone's output, so bind
        ``mltf.build_backbone.embedding_dim = 512`` for the paper's Phi_cnn).
      initial_model: a ``.keras`` classifier to start from (seed 000 starts
        from a BCE-trained generator); its backbone replaces
        ``mltf.build_backbone``.
      pretrain_epochs: with ``wgan_gp`` and no ``initial_model``: BCE epochs
        first (log ``pretrain_log.csv``, model ``pretrained.keras``, reused
        when the run is resumed).
      critic_optimizer, generator_optimizer: ``wgan_gp``'s two optimizers
        (gin scopes: ``@critic/keras.optimizers.Adam()``); default Adam 1e-4
        for both, as in seed 000.
    """
    import keras
    import numpy as np
    from mltf import backbones, callbacks as mltf_callbacks, metrics, models
    from mltf.core import distribute
    from mltf import run_state
    from mltf.core import steps as steps_lib
    from mltf.data import schema
    import pipelines
    from pipelines import preprocessing

    if optimizer is not None and learning_rate is not None:
        raise ValueError("bind either mltf.train.optimizer or mltf.train.learning_rate, "
                         "not both (the optimizer carries its own learning rate)")
    strategy_obj = distribute.make_strategy(strategy)
    chief = distribute.is_chief(strategy_obj)
    run_dir = model_dir
    if not chief:
        # The run folder is the chief's; another worker's writes go to a
        # folder of its own, removed when it ends.
        model_dir = tempfile.mkdtemp(prefix=f"mltf-{distribute.task_name(strategy_obj)}-")
        atexit.register(shutil.rmtree, model_dir, True)
    os.makedirs(model_dir, exist_ok=True)
    train_cfg, eval_cfg = pipelines.input_configs()
    distribute.check_batch(train_cfg.batch_size, strategy_obj)
    info = schema.read_info(train_cfg.data_dir)
    if mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision)
    keras.utils.set_random_seed(seed)

    if info.kind == schema.KIND_FEATURES:
        input_shape = (info.feature_dim,)
    else:
        side = pipelines.augment.as_hw(train_cfg.image_size)
        input_shape = (side[0], side[1], 3)
    if method not in ("bce", "wgan_gp", "retdm"):
        raise ValueError("mltf.train.method must be 'bce', 'wgan_gp' or 'retdm', "
                         f"got {method!r}")
    if method == "retdm" and pretrain_epochs:
        raise ValueError("with method='retdm', stage 1 (BCE) is "
                         "mltf.build_retdm.classification_epochs, not pretrain_epochs")
    pretrained_path = os.path.join(model_dir, "pretrained.keras")
    # A resumed run whose BCE phase is done; the chief decides for all workers.
    pretrained = distribute.broadcast_flag(
        strategy_obj, method == "wgan_gp" and initial_model is None
        and os.path.exists(pretrained_path))
    if pretrained:
        pretrain_epochs = 0
        if chief:
            initial_model = pretrained_path
    with strategy_obj.scope():
        if initial_model:
            if not os.path.isfile(initial_model):
                raise FileNotFoundError(f"initial_model not found: {initial_model}")
            try:
                model = keras.models.load_model(initial_model, compile=False)
            except Exception as e:  # a truncated or foreign file: say which
                raise run_state.RunStateError(
                    f"{initial_model} cannot be loaded as a Keras model "
                    f"({type(e).__name__}: {str(e)[:300]})"
                    + ("; it is this run's BCE phase: delete it to run that phase again"
                       if initial_model == pretrained_path else "")) from None
            if getattr(model, "num_labels", None) != info.num_labels:
                raise ValueError(f"{initial_model} predicts {getattr(model, 'num_labels', '?')} "
                                 f"labels, the dataset has {info.num_labels}")
            backbone = model.backbone
        else:
            backbone = backbones.build_backbone(input_shape=input_shape)
            model = models.MultiLabelClassifier(
                backbone, info.num_labels, label_names=info.label_names,
                dropout=dropout, label_smoothing=label_smoothing, name="classifier")
            model.build((None,) + tuple(input_shape))
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate or 1e-3)
        optimizer = in_scope(optimizer)
        if method != "retdm":  # RETDM's optimizer trains more than the classifier
            model.compile(optimizer=optimizer, xla=steps_lib.resolve_xla(xla))
    if pretrained:  # only the chief loaded it (a fresh net of the same shape elsewhere)
        distribute.broadcast_variables(strategy_obj, model.variables)

    def resolve(cfg):
        if cfg.preprocessing == "auto":
            cfg.preprocessing = (backbones.preprocessing_mode(backbone.name)
                                 if info.kind == schema.KIND_IMAGE else "none")
        return preprocessing.mode_for(cfg.preprocessing) and cfg

    train_cfg, eval_cfg = resolve(train_cfg), resolve(eval_cfg)
    eval_cfg.training = False
    eval_ds = pipelines.make_dataset(eval_cfg, info=info)
    num_train = info.split(train_cfg.split).num_examples
    if verbose == "auto":  # a bar on a terminal, one line per epoch in a log
        verbose = 1 if sys.stdout.isatty() else 2

    def train_dataset(cfg):
        if strategy_obj.num_replicas_in_sync > 1:
            return pipelines.distributed_dataset(strategy_obj, cfg)
        return pipelines.make_dataset(cfg, info=info)

    log_dir = os.path.join(model_dir, "tensorboard")
    backup_dir = os.path.join(model_dir, "backup")

    def phase_state(name, folder, log_name, extra_callbacks, **kwargs):
        return run_state.RunState(
            backup_dir=folder, log_path=os.path.join(model_dir, log_name),
            callbacks=extra_callbacks, writer=chief, strategy=strategy_obj,
            keep=backup_keep, name=name, **kwargs)

    if method == "wgan_gp" and pretrain_epochs > 0:
        pre = mltf_callbacks.FullSetEvaluation(eval_ds, every=eval_every)
        pre_state = phase_state("pretraining", os.path.join(backup_dir, "pretraining"),
                                "pretrain_log.csv", [],
                                tensorboard_dir=os.path.join(log_dir, "pretrain"))
        done = pre_state.restore(model)
        model.fit(train_dataset(train_cfg), epochs=pretrain_epochs, initial_epoch=done,
                  steps_per_epoch=steps_per_epoch or max(1, num_train // train_cfg.batch_size),
                  callbacks=[pre, mltf_callbacks.TerminateOnNaNWithMessage(), pre_state],
                  verbose=verbose)
        if chief:
            run_state.save_model(model, pretrained_path)
        pre_state.close()

    fit_model = model
    if method == "wgan_gp":
        from mltf import wgan
        with strategy_obj.scope():
            fext = wgan.frozen_copy(model.backbone)
            critic = wgan.build_critic(info.num_labels)
            fit_model = wgan.build_wgan(model, critic, fext)
            fit_model.build((None,) + tuple(input_shape))
            fit_model.compile(
                critic_optimizer=in_scope(critic_optimizer or keras.optimizers.Adam(1e-4)),
                generator_optimizer=in_scope(generator_optimizer
                                             or keras.optimizers.Adam(1e-4)),
                xla=steps_lib.resolve_xla(xla))
        # One step draws `slots` fresh batches (see mltf.wgan).
        train_cfg.with_mismatched = fit_model.negative_sampling
        train_cfg.batch_size *= fit_model.slots
    stage_cbs = []
    if method == "retdm":
        from mltf import retdm
        train_labels = schema.read_labels(train_cfg.data_dir, train_cfg.split)
        with strategy_obj.scope():
            fit_model = retdm.build_retdm(model, train_labels)
            fit_model.build((None,) + tuple(input_shape))
            fit_model.compile(optimizer=optimizer, xla=steps_lib.resolve_xla(xla))
        stage_cbs = [retdm.StageSchedule(
            [c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)])]
    train_ds = train_dataset(train_cfg)
    steps = steps_per_epoch or max(1, num_train // train_cfg.batch_size)

    evaluation = mltf_callbacks.FullSetEvaluation(eval_ds, every=eval_every)
    extra = [*stage_cbs, *callbacks]
    state = phase_state("run", backup_dir, "training_log.csv", extra, tensorboard_dir=log_dir,
                        checkpoint_dir=os.path.join(model_dir, "checkpoints"),
                        checkpoint_metric=checkpoint_metric,
                        mode=mltf_callbacks.checkpoint_mode(checkpoint_metric))
    initial_epoch = state.restore(fit_model)
    cbs = [*stage_cbs, evaluation, mltf_callbacks.LearningRateLogger(),
           mltf_callbacks.TerminateOnNaNWithMessage(), *callbacks]
    if chief:
        cbs.append(mltf_callbacks.OperativeConfigWriter(model_dir, log_dir))
    cbs.append(state)  # last: it commits the logs the others wrote
    start = time.time()
    fit_model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps, callbacks=cbs, verbose=verbose)
    train_seconds = time.time() - start
    if any(getattr(c, "stopped_at", None) is not None for c in cbs):
        raise FloatingPointError("training stopped on a NaN or infinite loss")

    y, s = mltf_callbacks.predict_dataset(model, eval_ds)
    results = metrics.compute_all(y, s)
    thresholds = np.full(info.num_labels, 0.5, np.float32)
    if tune_thresholds:
        thresholds = metrics.tune_thresholds(y, s)
        model.set_thresholds(thresholds)
    if chief:
        run_state.save_model(model, os.path.join(model_dir, "model.keras"))
    report = {"split": eval_cfg.split, "data_dir": eval_cfg.data_dir,
              "metrics": results, "thresholds": [float(t) for t in thresholds],
              "label_names": info.label_names, "epochs": len(state.rows),
              "train_seconds": round(train_seconds, 1),
              "replicas": strategy_obj.num_replicas_in_sync,
              "workers": distribute.num_workers(strategy_obj), "method": method,
              "steps_per_epoch": steps, "global_batch": train_cfg.batch_size}
    if method == "retdm":
        report["retdm"] = {key: fit_model.get_config()[key] for key in (
            "num_sets", "k", "alpha", "beta", "lam", "two_way", "negatives",
            "classification_epochs", "embedding_epochs")}
    if chief:
        run_state.write_json(os.path.join(model_dir, "metrics.json"), report)
        state.close()  # last: a kill before this resumes and writes them again
    else:
        shutil.rmtree(model_dir, ignore_errors=True)
    print(f"\n{metrics.format_table(results)}\n"
          f"(split {eval_cfg.split!r} of {eval_cfg.data_dir}; threshold 0.5; "
          f"training {train_seconds:.0f} s; run folder {run_dir}"
          f"{'' if chief else ', written by the chief'})")
    return results


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
    import pipelines  # noqa: F401  (registers pipelines.InputConfig)
    # Register mltf.build_backbone, build_wgan and build_retdm with gin.
    from mltf import backbones, retdm, wgan  # noqa: F401
    try:
        gin.parse_config_files_and_bindings(FLAGS.config, FLAGS.gin_bindings)
    except (ValueError, KeyError, TypeError, SyntaxError) as e:
        print(f"mltf.train: error in the gin config: {e}", file=sys.stderr)
        return 2
    import tensorflow as tf
    from mltf import run_state
    from mltf.core import distribute
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
        train(model_dir)
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
