"""The kill-safe ``fit`` of a run (``Fitter``): the main phase and a
method's extra phases, with the per-epoch evaluation, the NaN guard, the
console and the run state."""

import dataclasses
import os
import sys
import time
from typing import Optional, Sequence

from mltf import methods
from mltf.training import callbacks as cbs_lib
from mltf.training import console, run_state
import pipelines


@dataclasses.dataclass
class Fitter:
    """``fit`` with the run's evaluation, NaN guard and kill-safe state, for
    the main phase and for a method's extra phases (``Run.fit_phase``).

    Args:
      run: the run being trained.
      eval_ds: the evaluation dataset (one pass).
      eval_every: full-set evaluation every this many epochs.
      backup_keep: committed states kept.
      steps_per_epoch: fixed steps per epoch, or None for one pass.
      verbose: Keras's own output instead of the compact line.
      key_metrics: the method's figures on the compact line.
      demo: the evaluation split's ``mltf.metrics.demo.SceneTruth`` (None:
        not a demo dataset).
    """
    run: "methods.Run"
    eval_ds: object
    eval_every: int
    backup_keep: int
    steps_per_epoch: Optional[int]
    verbose: bool
    key_metrics: Sequence[str] = ()
    demo: object = None

    def steps(self, cfg) -> int:
        if self.steps_per_epoch:
            return self.steps_per_epoch
        num = pipelines.input.num_read(cfg, self.run.info.split(cfg.split).num_examples)
        return pipelines.input.steps_per_epoch(num, cfg.batch_size)

    def _dataset(self, cfg):
        if self.run.strategy.num_replicas_in_sync > 1:
            return pipelines.distributed_dataset(self.run.strategy, cfg)
        return pipelines.make_dataset(cfg, info=self.run.info)

    def _state(self, name, backup, log_name, extra, **kwargs):
        return run_state.RunState(
            backup_dir=os.path.join(self.run.model_dir, *backup),
            log_path=os.path.join(self.run.model_dir, log_name), callbacks=extra,
            writer=self.run.chief, strategy=self.run.strategy, keep=self.backup_keep,
            name=name, **kwargs)

    def _console(self, phase: str = ""):
        """Keras's ``verbose`` and the callbacks that print the epochs (the
        fits pass ``shuffle=False``: the input pipeline shuffles, and Keras's
        default True, ignored for a ``tf.data`` dataset, warns at every fit)."""
        if self.verbose:
            return (1 if sys.stdout.isatty() else 2), []
        return 0, [console.EpochConsole(self.key_metrics, phase=phase)]

    def _evaluation(self, tensorboard: str):
        """The full-set evaluation, with the dependency diagnostics against
        the training part's label sets; the chief draws their images in
        ``<tensorboard>/diagnostics``."""
        images = os.path.join(self.run.model_dir, tensorboard, "diagnostics")
        return cbs_lib.FullSetEvaluation(self.eval_ds, every=self.eval_every,
                                         train_labels=self.run.train_labels,
                                         image_dir=images if self.run.chief else None,
                                         demo=self.demo)

    def phase(self, model, name: str, epochs: int) -> None:
        """An extra phase ``name`` (log ``<name>_log.csv``, state
        ``backup/<name>ing``, TensorBoard ``tensorboard/<name>``)."""
        state = self._state(f"{name}ing", ("backup", f"{name}ing"), f"{name}_log.csv", [],
                            tensorboard_dir=os.path.join(self.run.model_dir, "tensorboard", name))
        done = state.restore(model)
        verbose, shown = self._console(name)
        model.fit(self._dataset(self.run.train_config), epochs=epochs, initial_epoch=done,
                  steps_per_epoch=self.steps(self.run.train_config),
                  callbacks=[self._evaluation(os.path.join("tensorboard", name)),
                             cbs_lib.TerminateOnNaNWithMessage(), *shown, state],
                  verbose=verbose, shuffle=False)
        state.close()

    def main(self, fit_model, epochs, method_callbacks, checkpoint_metric):
        model_dir, cfg = self.run.model_dir, self.run.train_config
        log_dir = os.path.join(model_dir, "tensorboard")
        user = list(self.run.user_callbacks)
        state = self._state("run", ("backup",), "training_log.csv", [*method_callbacks, *user],
                            tensorboard_dir=log_dir,
                            checkpoint_dir=os.path.join(model_dir, "checkpoints"),
                            checkpoint_metric=checkpoint_metric,
                            mode=cbs_lib.checkpoint_mode(checkpoint_metric))
        initial_epoch = state.restore(fit_model)
        # The method's first (RETDM's stage), then the evaluation whose logs
        # the user's callbacks read.
        cbs = [*method_callbacks, self._evaluation("tensorboard"),
               cbs_lib.LearningRateLogger(), cbs_lib.TerminateOnNaNWithMessage(), *user]
        if self.run.chief:
            cbs.append(cbs_lib.OperativeConfigWriter(model_dir, log_dir))
        verbose, shown = self._console()
        cbs += [*shown, state]  # the state last: it commits the logs the others wrote
        start = time.time()
        fit_model.fit(self._dataset(cfg), epochs=epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=self.steps(cfg), callbacks=cbs, verbose=verbose,
                      shuffle=False)
        if any(getattr(c, "stopped_at", None) is not None for c in cbs):
            raise FloatingPointError("training stopped on a NaN or infinite loss")
        return state, time.time() - start
