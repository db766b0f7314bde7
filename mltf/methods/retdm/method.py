"""``mltf.train.method = "retdm"``: seed 001's three-stage training.

Settings in ``mltf.build_retdm``; ``mltf.train.optimizer`` trains every stage
(each updates its own variables); f_I is the backbone's output, so bind
``mltf.build_backbone.embedding_dim = 512`` for the paper's Phi_cnn.
"""

import keras

from mltf.data import schema
from mltf.methods.base import Method, Run, SettingsError
from mltf.methods.retdm.model import build_retdm
from mltf.methods.scoring import EmbeddingSetScorer


class StageSchedule(keras.callbacks.Callback):
    """Puts a ``RETDMClassifier`` in the stage of each epoch
    (``stage_at``), rebuilds the train function when the stage changes, logs
    ``retdm_stage``, and restarts the given ``ReduceLROnPlateau`` callbacks'
    patience at each new stage (stage 2 leaves the classifier, hence
    ``val_loss``, unchanged, which would otherwise count as a plateau).

    Args:
      plateau_callbacks: ``keras.callbacks.ReduceLROnPlateau`` instances.
      verbose: print a line at each stage change.
    """

    def __init__(self, plateau_callbacks=(), verbose: bool = True):
        super().__init__()
        self.plateau_callbacks = list(plateau_callbacks)
        self.verbose = verbose
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        stage = self.model.stage_at(epoch)
        if stage == self._current:
            return
        self.model.set_stage(stage)
        self.model.make_train_function(force=True)
        if epoch == 0 or self.model.stage_at(epoch - 1) != stage:
            # A new stage, not a resumed run's first epoch (whose counters
            # mltf.training.run_state brought back).
            for cb in self.plateau_callbacks:
                cb._reset()  # keras's own restart: wait, cooldown and best
        if self.verbose:
            print(f"RETDM stage {stage} from epoch {epoch + 1}", flush=True)
        self._current = stage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["retdm_stage"] = float(self._current)


class RETDM(Method):
    """Seed 001.

    Args:
      (none: no ``mltf.train`` options of its own; its settings are
      ``mltf.build_retdm``'s.)
    """

    name = "retdm"
    options = {}
    ema_refusal = ("its one optimizer trains three stages on different variables, and "
                   "an average across the stage boundaries is neither the paper's nor tested")
    # The stage, the metric and reconstruction terms of eq. 13 (the loss has
    # them summed) and the share of examples where J1 and J2 are active.
    key_metrics = ("retdm_stage", "j1", "j2", "reconstruction", "j1_active", "j2_active")
    knn_candidates = True  # EmbeddingSetScorer.embed_sets: f_y of the training sets

    def check(self, options, foreign=()):
        if options.get("pretrain_epochs"):
            raise SettingsError("with method='retdm', stage 1 (BCE) is "
                                "mltf.build_retdm.classification_epochs, not pretrain_epochs")
        options = {k: v for k, v in options.items() if k != "pretrain_epochs"}
        return super().check(options, foreign)

    def prepare(self, run: Run, classifier) -> None:
        """Nothing: RETDM's optimizer trains more than the classifier."""

    def build(self, run: Run, classifier):
        labels = run.train_labels
        if labels is None:
            labels = schema.read_labels(run.train_config.data_dir, run.train_config.split)
        with run.strategy.scope():
            model = build_retdm(classifier, labels)
            model.build((None,) + tuple(run.input_shape))
            model.compile(optimizer=run.optimizer, xla=run.xla)
        return model

    def callbacks(self, run: Run, fit_model):
        return [StageSchedule([c for c in run.user_callbacks
                               if isinstance(c, keras.callbacks.ReduceLROnPlateau)])]

    def report(self, run: Run, fit_model):
        return {"retdm": {key: fit_model.get_config()[key] for key in (
            "num_sets", "k", "alpha", "beta", "lam", "two_way", "negatives",
            "classification_epochs", "embedding_epochs", "normalize_embeddings")}}

    def set_scorer(self, run: Run, fit_model):
        """dep(Y, x) = -d(f_I(x), f_y(Y)) in the learned embedding."""
        return EmbeddingSetScorer(fit_model.classifier.backbone, fit_model.label_hidden,
                                  fit_model.label_embedding,
                                  normalize=fit_model.normalize_embeddings, name="set_scorer")
