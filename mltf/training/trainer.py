"""``mltf.train``: the run, from a gin config to ``model.keras`` and
``metrics.json``, for any method (``mltf.methods``).

The trainer is an orchestrator: it builds the strategy, the classifier and
the evaluation input, asks the method for the model to fit, its training
input and its callbacks, fits with the run's kill-safe state
(``run_state``), then evaluates and writes the run folder. It never asks
which method it runs.
"""

import atexit
import os
import shutil
import tempfile
from typing import Optional, Sequence

import gin
import keras

from mltf import backbones, metrics, methods
from mltf.core import distribute
from mltf.core import steps as steps_lib
from mltf.data import schema
from mltf.metrics import demo
from mltf.models import MultiLabelClassifier, in_global_policy
from mltf.training import ema, fitter
from mltf.training import run_files, run_state, selection
from mltf.training import set_decoding as set_decoding_lib
from mltf.training.gin_setup import in_scope
import pipelines
from pipelines import preprocessing


PREDICTIONS = "predictions.npz"
# "0" skips the final figures (about 1-2 s a run, and the matplotlib import):
# the test suite's hundred-odd tiny runs set it; mltf.evaluate always draws.
FIGURES_ENV = "MLTF_FINAL_FIGURES"


@gin.configurable(module="mltf", denylist=["model_dir", "verbose"])
def train(model_dir: str, epochs: int = 10, steps_per_epoch: Optional[int] = None,
          optimizer=None, learning_rate: Optional[float] = None, dropout: float = 0.0,
          label_smoothing: float = 0.0, loss=None, label_reduction: Optional[str] = None,
          xla="auto",
          mixed_precision: Optional[str] = None, strategy: str = "auto",
          checkpoint_metric: str = "val_mAP", eval_every: int = 1,
          backup_keep: int = 2, callbacks: Sequence = (), tune_thresholds: bool = True,
          threshold_mode: str = "f1", threshold_beta: float = 1.0,
          threshold_target: Optional[float] = None,
          select_fraction: float = 0.1, select_seed: int = 0, select_method: str = "iterative",
          final: str = "last", seed: int = 0, verbose: bool = False, method: str = "bce",
          initial_model: Optional[str] = None, ema_momentum: Optional[float] = None,
          set_decoding: bool = False, **method_options):
    """Trains a classifier with ``method``; returns the final evaluation metrics.

    Args:
      model_dir: run folder (the ``--model_dir`` flag; never bound in gin).
      epochs, steps_per_epoch: the fit's length (default steps: one pass,
        ``num_examples // batch_size``).
      optimizer: a Keras optimizer (``@keras.optimizers.Adam()``); default
        Adam with ``learning_rate`` (default 1e-3); binding both is an error.
      dropout, label_smoothing, loss, label_reduction: see
        ``mltf.models.MultiLabelClassifier``; ``loss`` (e.g.
        ``@mltf.losses.<Name>()``) and ``label_reduction`` (None: the
        loss's own ``label_reduction``, else the initial model's, else
        ``"mean"``; a loss's own must agree) replace an initial model's too.
      xla: XLA-compile the per-replica step (``mltf.core.steps``); ``"auto"``:
        on GPUs, off on CPUs, where it measured slower.
      mixed_precision: None, ``"mixed_float16"`` (GPU) or ``"mixed_bfloat16"``.
      strategy: ``auto``, ``default``, ``mirrored``, ``multi_worker`` or
        ``cpu:N`` (``mltf.core.distribute``).
      checkpoint_metric: the log key that picks ``checkpoints/best.keras``
        (``val_loss`` and ranking errors are minimised, others maximised).
      eval_every: full-set evaluation every this many epochs.
      backup_keep: committed epoch states kept in ``backup/``; a killed run
        resumes at the start of the epoch it was in (``run_state``).
      callbacks: extra Keras callbacks (``ReduceLROnPlateau`` can monitor
        ``val_loss``: the full-set evaluation logs it).
      tune_thresholds: tune thresholds on the selection split, save them with
        ``model.keras`` and report the evaluation split's metrics at them as
        ``metrics_tuned`` in ``metrics.json`` (how: ``threshold_choice``).
      threshold_mode, threshold_beta, threshold_target: how
        (``mltf.metrics.choose_thresholds``): ``"f1"`` (per class),
        ``"fbeta"`` (per class, this beta), ``"precision"`` / ``"recall"``
        (per class, at least this target), ``"global"`` (one for all, O-F1).
      select_fraction, select_seed, select_method: the selection split
        (``mltf.training.selection``): this share of the training split,
        drawn with this seed, ``"iterative"`` (label-stratified) or
        ``"random"``, is held out of training; the best epoch, the plateau
        schedule (``val_*`` logs) and the thresholds are chosen on it, and
        the evaluation split is read once at the end. 0: everything on the
        evaluation split (optimistic; ``metrics.json`` says so).
      final: the epoch whose weights the final evaluation, the thresholds and
        ``model.keras`` use: ``"last"``, or ``"best"``, that of
        ``checkpoints/best.keras`` (``checkpoint_metric`` on the selection
        split; ``selection.final_weights``); ``metrics.json``'s ``final``.
      seed: seed of Keras's initialisers and dropout.
      verbose: Keras's own output (a bar on a terminal, else one line per
        epoch, with every log) instead of ``mltf.training.console``'s compact
        line (the ``--verbose`` flag; never bound in gin: how much the console
        shows is the command's choice, not the run's).
      method: a name in ``mltf.methods.REGISTRY`` (``"bce"``, ``"wgan_gp"``:
        seed 000, ``"retdm"``: seed 001).
      initial_model: a ``.keras`` classifier to start from (its backbone
        replaces ``mltf.build_backbone``).
      ema_momentum: keep an exponential moving average of the weights at this
        momentum (the optimizer's ``use_ema``; ASL's recipe: 0.9997): the
        per-epoch evaluation, ``checkpoints/*.keras``, ``model.keras`` and
        the final metrics use the average (``mltf.training.ema``). None:
        off, unless the optimizer binds ``use_ema`` itself. Methods that
        refuse it say why (``Method.ema_refusal``).
      set_decoding: at the end, decode whole label sets with the method's
        dependency model (``mltf.training.set_decoding``; settings
        ``mltf.set_decoding_options``): ``w`` chosen on the selection split,
        ``metrics_set_decoded`` in ``metrics.json``, ``set_scorer.keras``
        and ``set_decoding.npz`` in the run folder.
      **method_options: the method's own options (``Method.options``, e.g.
        ``wgan_gp``'s ``pretrain_epochs``); an unknown name is an error.
    """
    if optimizer is not None and learning_rate is not None:
        raise ValueError("bind either mltf.train.optimizer or mltf.train.learning_rate, "
                         "not both (the optimizer carries its own learning rate)")
    metrics.check_threshold_mode(threshold_mode, threshold_beta, threshold_target)
    selection.check_final(final)
    plugin = methods.get(method)
    if set_decoding:
        set_decoding_lib.check_options(plugin)
    optimizer = optimizer or keras.optimizers.Adam(learning_rate or 1e-3)
    if ema_momentum is not None:
        optimizer = ema.with_ema(optimizer, ema_momentum)
    if ema.uses_ema(optimizer) and plugin.ema_refusal:
        raise methods.SettingsError(
            f"mltf.train.ema_momentum (or the optimizer's use_ema) is not supported with "
            f"method {method!r}: {plugin.ema_refusal}")
    options = plugin.check(method_options, foreign=methods.option_names(exclude=method))
    run, eval_cfg, run_dir = _start(model_dir, options, strategy, xla,
                                    mixed_precision, seed, callbacks, initial_model)
    chosen = selection.carve(run.train_config, eval_cfg, run.info, select_fraction,
                             select_seed, select_method)
    run.train_config, run.train_labels = chosen.train_config, chosen.train_labels
    run.select_config = chosen.select_config
    model = _start_classifier(plugin, run, optimizer, dropout, label_smoothing, loss,
                              label_reduction)
    train_cfg, info, strategy_obj = run.train_config, run.info, run.strategy
    select_cfg = chosen.select_config
    for cfg in {id(c): c for c in (train_cfg, eval_cfg, select_cfg)}.values():
        cfg.preprocessing = _resolve_preprocessing(cfg.preprocessing, model, info)
    model.preprocessing = train_cfg.preprocessing
    eval_cfg.training = False
    eval_cfg.with_ids = select_cfg.with_ids = True  # for predictions.npz, the demo's digits
    truths = tuple(demo.scene_truth(info if c.data_dir == train_cfg.data_dir
                                    else schema.read_info(c.data_dir), c.split)
                   for c in (select_cfg, eval_cfg))
    eval_ds = pipelines.make_dataset(eval_cfg, info=info)
    select_ds = (pipelines.make_dataset(select_cfg, info=info) if chosen.carved else eval_ds)
    fit = fitter.Fitter(run, select_ds, eval_every, backup_keep, steps_per_epoch, verbose,
                  plugin.key_metrics, truths[0])
    run.fit_phase = fit.phase
    plugin.prepare(run, model)
    fit_model = plugin.build(run, model)
    run.train_config = plugin.adapt_input(run, fit_model, train_cfg)
    state, train_seconds = fit.main(fit_model, epochs, plugin.callbacks(run, fit_model),
                                    checkpoint_metric)
    final_entry = selection.final_weights(final, run, model, state)
    tuning = dict(mode=threshold_mode, beta=threshold_beta, target=threshold_target)
    results, thresholds, tuned, choice, selected, predictions, selected_scores = (
        selection.evaluate(model, select_ds, eval_ds if chosen.carved else None,
                           info.label_names, tuning if tune_thresholds else None,
                           run.train_labels, truths))
    report = {"split": eval_cfg.split, "data_dir": eval_cfg.data_dir, **results,
              **({"metrics_tuned": tuned, "threshold_choice": choice} if tuned is not None
                 else {}),
              "selection": {**chosen.describe(eval_cfg.split), **selected},
              "thresholds": [float(t) for t in thresholds], "label_names": info.label_names,
              "final": final_entry, "epochs": len(state.rows),
              "train_seconds": round(train_seconds, 1),
              "replicas": strategy_obj.num_replicas_in_sync,
              "workers": distribute.num_workers(strategy_obj), "method": method,
              "steps_per_epoch": fit.steps(run.train_config),
              "global_batch": run.train_config.batch_size, **plugin.report(run, fit_model)}
    if set_decoding:
        report["metrics_set_decoded"], decoded = set_decoding_lib.decode_run(
            plugin, run, fit_model, model, select_ds, eval_ds if chosen.carved else None,
            predictions, selected_scores)
    _finish(run, run_dir, model, report, state, chosen, predictions,
            decoded if set_decoding else None)
    return results["metrics"]


# --- the pieces of a run ------------------------------------------------------


def _start(model_dir, options, strategy, xla, mixed_precision, seed, callbacks, initial_model):
    """The strategy, this process's folder, the input configs, the dataset
    and the seeds: (``Run``, the eval config, the run folder)."""
    strategy_obj = distribute.make_strategy(strategy)
    chief = distribute.is_chief(strategy_obj)
    folder = model_dir if chief else _worker_dir(strategy_obj)
    os.makedirs(folder, exist_ok=True)
    train_cfg, eval_cfg = pipelines.input_configs()
    pipelines.input.check_global_batch(train_cfg.batch_size, strategy_obj.num_replicas_in_sync)
    info = schema.read_info(train_cfg.data_dir)
    if mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision)
    keras.utils.set_random_seed(seed)
    run = methods.Run(
        model_dir=folder, chief=chief, strategy=strategy_obj, info=info,
        train_config=train_cfg, input_shape=_input_shape(info, train_cfg), optimizer=None,
        xla=steps_lib.resolve_xla(xla), user_callbacks=list(callbacks), options=options,
        initial_model=initial_model, in_scope=in_scope, save_model=run_state.save_model)
    return run, eval_cfg, model_dir


def _start_classifier(plugin, run, optimizer, dropout, label_smoothing, loss, label_reduction):
    """The classifier the run trains (loaded, resumed or new) and
    ``run.optimizer``, both made in the strategy's scope."""
    # A phase the method left in the run folder (chief's decision for all workers).
    resumed = plugin.initial_model(run) if run.chief else None
    run.resumed_phase = distribute.broadcast_flag(run.strategy, resumed is not None)
    with run.strategy.scope():
        model = _classifier(resumed or run.initial_model, run, dropout, label_smoothing)
        # Unbound: the loss's own reduction, so binding it on the loss is enough.
        label_reduction = label_reduction or getattr(loss, "label_reduction", None)
        if label_reduction is not None:
            model.label_reduction = label_reduction
        if loss is not None or label_reduction is not None:
            model.set_loss(loss if loss is not None else model.custom_loss)
        run.optimizer = in_scope(optimizer)
    if run.resumed_phase:  # only the chief loaded it (a fresh net of the same shape elsewhere)
        distribute.broadcast_variables(run.strategy, model.variables)
    return model


def _finish(run, run_dir, model, report, state, chosen, predictions, decoded):
    """Writes ``model.keras``, ``metrics.json``, ``predictions.npz`` (the
    evaluation split's ``ids``, ``labels``, ``scores`` and, with set
    decoding, ``decoded``, for paired comparisons), ``select_ids.txt`` and
    the figures in ``tensorboard/final`` (``mltf.training.pictures``, at the
    saved thresholds) (the chief) and prints the table."""
    if run.chief:
        chosen.write_ids(run.model_dir)
        run_files.write_predictions(os.path.join(run.model_dir, PREDICTIONS), *predictions,
                                    decoded)
        run_state.save_model(model, os.path.join(run.model_dir, "model.keras"))
        run_state.write_json(os.path.join(run.model_dir, "metrics.json"), report)
        if os.environ.get(FIGURES_ENV, "1") != "0":
            from mltf.training import pictures  # matplotlib: only when drawing
            drawn = pictures.draw(schema.read_info(report["data_dir"]), report["data_dir"],
                                  report["split"], predictions, report["thresholds"],
                                  "mltf.train")
            pictures.write_tensorboard(os.path.join(run.model_dir, "tensorboard", "final"),
                                       drawn, *predictions[1:], report["label_names"],
                                       report["epochs"])
        state.close()  # last: a kill before this resumes and writes them again
    else:
        shutil.rmtree(run.model_dir, ignore_errors=True)
    print(f"\n{metrics.format_table(report['metrics'], report.get('diagnostics'))}\n"
          f"(split {report['split']!r} of {report['data_dir']}; threshold 0.5; "
          f"training {report['train_seconds']:.0f} s; run folder {run_dir}"
          f"{'' if run.chief else ', written by the chief'})")
    if "metrics_set_decoded" in report:
        print(_set_comparison(report))
    final = report["final"]
    if final["choice"] == "best":
        print(f"Final weights: epoch {final['epoch']} of training_log.csv, the best "
              f"{final['metric']} of the per-epoch evaluation ({final['value']:.4f})")
    tuned = report.get("metrics_tuned")
    if tuned is not None:
        where = ("the selection split" if report["selection"]["carved"]
                 else "this split (optimistic)")
        choice = report["threshold_choice"]
        if choice.get("unmet"):
            print(f"Threshold target {choice['target']} not reached for: "
                  f"{', '.join(choice['unmet'])} (their thresholds maximise {choice['mode']})")
        print(f"At the thresholds tuned ({choice['mode']}) on {where} (metrics_tuned): "
              + ", ".join(f"{name} {100 * tuned[key]:.2f}" for key, name in (
                  ("CF1", "C-F1"), ("OF1", "O-F1"), ("example_F1", "example-F1"),
                  ("subset_accuracy", "subset accuracy"), ("jaccard", "Jaccard"))))


def _worker_dir(strategy) -> str:
    """The run folder is the chief's; another worker's writes go to a folder
    of its own, removed when it ends."""
    path = tempfile.mkdtemp(prefix=f"mltf-{distribute.task_name(strategy)}-")
    atexit.register(shutil.rmtree, path, True)
    return path


def _input_shape(info, train_cfg):
    if info.kind == schema.KIND_FEATURES:
        return (info.feature_dim,)
    side = pipelines.augment.as_hw(train_cfg.image_size)
    return (side[0], side[1], 3)


def _classifier(path, run, dropout, label_smoothing):
    """The classifier loaded from ``path`` or built from
    ``mltf.build_backbone``."""
    if not path:
        backbone = backbones.build_backbone(input_shape=run.input_shape)
        model = MultiLabelClassifier(
            backbone, run.info.num_labels, label_names=run.info.label_names,
            dropout=dropout, label_smoothing=label_smoothing, name="classifier")
        model.build((None,) + tuple(run.input_shape))
        return model
    if not os.path.isfile(path):
        raise FileNotFoundError(f"initial_model not found: {path}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # a truncated or foreign file: say which
        raise run_state.RunStateError(
            f"{path} cannot be loaded as a Keras model ({type(e).__name__}: {str(e)[:300]})"
            + ("; it is this run's own earlier phase: delete it to run that phase again"
               if path != run.initial_model else "")) from None
    if getattr(model, "num_labels", None) != run.info.num_labels:
        raise ValueError(f"{path} predicts {getattr(model, 'num_labels', '?')} "
                         f"labels, the dataset has {run.info.num_labels}")
    return in_global_policy(model)  # mixed precision reaches a float32 file too


def _resolve_preprocessing(mode, model, info) -> str:
    """``"auto"``: what the classifier was trained with, else what its
    backbone expects; feature datasets are never scaled."""
    if mode == "auto":
        if info.kind != schema.KIND_IMAGE:
            return "none"
        mode = model.preprocessing or backbones.preprocessing_mode(model.backbone.name)
    return preprocessing.mode_for(mode)


def _set_comparison(report) -> str:
    """The reported split's label sets at 0.5, at the tuned thresholds and
    decoded, side by side (the end of a run with set decoding)."""
    decoded = report["metrics_set_decoded"]
    columns = [("threshold 0.5", report["metrics"])]
    if "metrics_tuned" in report:
        columns.append(("tuned", report["metrics_tuned"]))
    columns.append((f"decoded (w={decoded['w']:g})", decoded["metrics"]))
    return (f"\n{metrics.format_set_comparison(columns, report['metrics']['mAP'])}\n"
            f"(decoded: whole label sets re-ranked by the likelihood plus w x "
            f"{decoded['scorer'] or 'no dependency scorer'}, w chosen on the selection split "
            f"by {decoded['metric']}; metrics_set_decoded in metrics.json)")
