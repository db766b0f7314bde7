"""The method contract and the model scaffolding that methods share.

A *method* is how a classifier is trained: ``bce`` (the baseline),
``wgan_gp`` (seed 000) or ``retdm`` (seed 001). The trainer
(``mltf.training``) knows none of them by name: it looks the method up in
``mltf.methods`` and calls the hooks of ``Method`` in this order:

1. ``check(options)``: the method's own ``mltf.train`` options (declared in
   ``options``), defaults filled in, unknown names refused;
2. ``initial_model(run)``: a ``.keras`` classifier to start from that the
   method itself left in the run folder (WGAN-gp's BCE phase of a resumed
   run), or None;
3. ``prepare(run, classifier)``: work on the classifier before the main fit
   (compile it; WGAN-gp's BCE pretraining);
4. ``build(run, classifier)``: the compiled Keras model that ``fit`` trains;
5. ``adapt_input(run, fit_model, config)``: the training ``InputConfig``
   for that model (batch size, ``batch_transforms``);
6. ``callbacks(run, fit_model)``: callbacks the method needs (RETDM's
   stages);
7. ``report(run, fit_model)``: settings to record in ``metrics.json``;
8. ``set_scorer(run, fit_model)``: the label-dependency model as a
   ``mltf.methods.scoring.SetScorer`` for set-level decoding
   (``mltf.train.set_decoding``), or None (no dependency model: BCE).

``Run`` is what a method sees of the run: the dataset, the strategy, the
resolved common settings, and ``fit_phase``, the trainer's kill-safe fit for
an extra phase (so methods need not import the training layer).

``LabelDependencyModel`` holds what a model that trains a classifier with an
extra objective repeats otherwise: ``call`` and ``test_step`` delegate to the
classifier, trackers listed in ``metrics``, the fixed compile arguments, and
the (de)serialisation of sub-models in the config.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras

from mltf.core import steps
from mltf.models.classifier import fixed_compile_arguments, labels_per_image
from pipelines.input import model_input


class SettingsError(ValueError):
    """A method's settings do not fit together; the message names the gin
    binding to change."""


@dataclasses.dataclass
class Run:
    """What a method sees of the run being set up.

    Args:
      model_dir: the folder this process writes (the run folder on the chief).
      chief: whether this process writes the run folder.
      strategy: the ``tf.distribute`` strategy; build models in its scope.
      info: the training dataset's ``DatasetInfo``.
      train_config: the training split's ``InputConfig``.
      input_shape: the model input's shape without the batch dimension.
      optimizer: the configured optimizer (``mltf.train.optimizer``), made in
        the strategy's scope.
      xla: whether per-replica steps are XLA-compiled.
      user_callbacks: the configured extra callbacks (``mltf.train.callbacks``).
      options: the method's checked options.
      initial_model: the ``.keras`` classifier the run started from, if any.
      resumed_phase: the classifier comes from ``Method.initial_model`` (an
        earlier phase of this run, finished before a kill).
      fit_phase: ``fit_phase(model, name, epochs)`` trains ``model`` for an
        extra phase with the trainer's evaluation, NaN guard and kill-safe
        state (log ``<name>_log.csv``, backup ``backup/<name>ing``); see
        ``mltf.training.trainer``.
      in_scope: ``in_scope(optimizer)``, a copy made in the strategy scope
        (gin builds optimizers before the scope exists).
      save_model: ``save_model(model, path)``, written atomically.
      train_labels: multi-hot labels ``[N, C]`` of the examples the run
        trains on (the training split without its selection part): the label
        sets a method may tabulate or draw from.
      select_config: the ``InputConfig`` of the selection split (the held-out
        part of the training split, or the evaluation split when nothing is
        carved; ``mltf.training.selection``), for a method's own per-epoch
        diagnostics; None when the trainer did not set it.
    """
    model_dir: str
    chief: bool
    strategy: Any
    info: Any
    train_config: Any
    input_shape: Tuple[int, ...]
    optimizer: Any
    xla: bool
    user_callbacks: Sequence = ()
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    initial_model: Optional[str] = None
    resumed_phase: bool = False
    fit_phase: Optional[Callable] = None
    in_scope: Optional[Callable] = None
    save_model: Optional[Callable] = None
    train_labels: Any = None
    select_config: Any = None


class Method:
    """A training method behind the trainer's hooks (module docstring).

    Subclasses set ``name`` and ``options`` (their ``mltf.train`` options with
    defaults) and override the hooks they need; the defaults train the
    classifier itself with BCE. ``ema_refusal``, when not empty, says why the
    method refuses ``mltf.train.ema_momentum`` (the trainer's evaluation and
    checkpoints swap in the average of the fit model's one ``optimizer``).
    ``key_metrics`` are the log keys of the method's own figures that the
    console's line shows each epoch after the loss and the evaluation
    (``mltf.training.console``; the logs keep every figure).
    ``knn_candidates``: the ``set_scorer`` embeds label sets
    (``embed_sets``), so set-level decoding can add the training sets
    nearest each image (``mltf.set_decoding_options.knn``).
    """

    name = ""
    options: Dict[str, Any] = {}
    ema_refusal = ""
    key_metrics: Tuple[str, ...] = ()
    knn_candidates = False

    def check(self, options: Dict[str, Any], foreign: Sequence[str] = ()) -> Dict[str, Any]:
        """The options with defaults filled in; ``SettingsError`` for names
        the method does not declare.

        Args:
          options: the ``mltf.train`` options bound beyond its parameters.
          foreign: option names of the other registered methods: bound ones
            are dropped with a note (a config shared by several methods, e.g.
            a WGAN-gp config run with ``method = "bce"`` as its control),
            not refused like a typo.
        """
        ignored = sorted(set(options) & set(foreign) - set(self.options))
        if ignored:
            print(f"mltf.train: method {self.name!r} ignores "
                  f"{', '.join('mltf.train.' + k for k in ignored)} (other methods' options)",
                  flush=True)
            options = {k: v for k, v in options.items() if k not in ignored}
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            own = ", ".join(sorted(self.options)) or "none"
            raise SettingsError(
                f"{', '.join('mltf.train.' + u for u in unknown)}: not a parameter of "
                f"mltf.train nor an option of method {self.name!r} (its options: {own})")
        return {**self.options, **options}

    def initial_model(self, run: Run) -> Optional[str]:
        return None

    def prepare(self, run: Run, classifier) -> None:
        """Compiles the classifier for BCE (its optimizer is saved with
        ``model.keras``)."""
        with run.strategy.scope():
            classifier.compile(optimizer=run.optimizer, xla=run.xla)

    def build(self, run: Run, classifier) -> keras.Model:
        return classifier

    def adapt_input(self, run: Run, fit_model, config):
        return config

    def callbacks(self, run: Run, fit_model) -> List:
        return []

    def report(self, run: Run, fit_model) -> Dict[str, Any]:
        return {}

    def set_scorer(self, run: Run, fit_model):
        return None


class SubmodelConfig:
    """Mixin of Keras models whose ``submodel_keys`` attributes are Keras
    objects (or None), serialised inside their config."""

    submodel_keys: Tuple[str, ...] = ()

    def get_config(self):
        config = super().get_config()
        for key in self.submodel_keys:
            value = getattr(self, key)
            config[key] = (keras.saving.serialize_keras_object(value)
                           if value is not None else None)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.submodel_keys:
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class LabelDependencyModel(SubmodelConfig, steps.PrebuiltFit, keras.Model):
    """Base of the models that train a classifier with an extra objective.

    Subclasses set ``classifier_key`` (the attribute, and config key, that
    holds the ``MultiLabelClassifier``), ``submodel_keys`` (config entries
    that are serialised Keras objects) and ``tracker_names``; they call
    ``super().__init__(**kwargs)`` first. The attribute names are part of the
    saved files' layout, so the classifier is reached through
    ``base_classifier()``, never through a second attribute.

    Args:
      **kwargs: ``keras.Model`` arguments (``name``).
    """

    classifier_key = "classifier"
    submodel_keys: Tuple[str, ...] = ("classifier",)
    tracker_names: Tuple[str, ...] = ()
    # The trackers ``test_step`` updates and reports.
    test_tracker_names: Tuple[str, ...] = ("bce",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.tracker_names}
        self.xla = False

    def base_classifier(self):
        return getattr(self, self.classifier_key)

    def call(self, inputs, training=False):
        return self.base_classifier()(inputs, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile_arguments(self, kwargs) -> Dict[str, Any]:
        """``kwargs`` of ``compile`` without the fixed ``loss``/``jit_compile``."""
        kwargs = dict(kwargs)
        fixed_compile_arguments(self, kwargs)
        return kwargs

    def logs(self, names: Optional[Sequence[str]] = None):
        names = list(self.trackers) if names is None else names
        return steps.step_logs({n: self.trackers[n].result() for n in names})

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        classifier = self.base_classifier()
        logits = classifier(model_input(x), training=False, return_logits=True)
        self.trackers["bce"].update_state(
            steps.unscaled(classifier.classification_loss(y, logits)))
        if "labels_per_image" in self.test_tracker_names:
            self.trackers["labels_per_image"].update_state(labels_per_image(logits))
        return self.logs(self.test_tracker_names)

