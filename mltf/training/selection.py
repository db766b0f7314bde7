"""The selection split: everything a run chooses is chosen on images it
neither trains on nor reports.

A run chooses its best epoch (``checkpoints/best.keras``), its learning-rate
schedule (``ReduceLROnPlateau`` on ``val_loss``), RETDM's stage patience and
the per-class thresholds saved with ``model.keras`` from the per-epoch
evaluation. If that evaluation ran on the split the run reports (COCO's
val2014, MULAN's test file), the reported numbers would be chosen on
themselves. So by default (``mltf.train.select_fraction = 0.1``) the trainer
carves a ``select`` part from the training split, seeded and stratified by
label (``mltf.data.splits.holdout_mask``): the model trains on the rest, the
per-epoch ``val_*`` logs and the thresholds come from ``select``, and the
configured evaluation split is read once, at the end, for ``metrics.json``.
The selected ids are written to ``select_ids.txt`` in the run folder, so the
split can be rebuilt (the same data, fraction, seed and method give the same
ids). ``select_fraction = 0`` restores the old protocol (everything on the
evaluation split); ``metrics.json`` then says so.

Which epoch's weights the run ends with is chosen here too
(``mltf.train.final``): ``"last"``, or ``"best"``, the epoch of
``checkpoints/best.keras`` (the best selection-split value of the checkpoint
metric), whose classifier weights replace the last ones before the final
evaluation, the thresholds and ``model.keras``.
"""

import dataclasses
import os
from typing import Any, Optional

import keras
import numpy as np

from mltf import inference, metrics
from mltf.core import distribute
from mltf.data import schema, splits
from mltf.methods import SettingsError
from mltf.metrics import demo
from mltf.utils import atomic

IDS_FILE = "select_ids.txt"
FINAL = ("last", "best")


@dataclasses.dataclass
class Selection:
    """Where a run's choices are made.

    Args:
      train_config: the training split's ``InputConfig`` without the
        selection part.
      select_config: the ``InputConfig`` of the split choices are made on
        (the ``select`` part of the training split, or the evaluation split
        when nothing is carved).
      train_labels: multi-hot labels of the examples the run trains on.
      ids: the selected ids (None when nothing is carved).
      fraction, seed, method: how the part was drawn.
    """
    train_config: Any
    select_config: Any
    train_labels: np.ndarray
    ids: Optional[np.ndarray] = None
    fraction: float = 0.0
    seed: int = 0
    method: str = "iterative"

    @property
    def carved(self) -> bool:
        return self.ids is not None

    def write_ids(self, run_dir: str) -> None:
        """``select_ids.txt``: one selected id per line, sorted."""
        if self.carved:
            atomic.atomic_text(os.path.join(run_dir, IDS_FILE),
                               "".join(f"{i}\n" for i in sorted(self.ids)))

    def describe(self, eval_split: str) -> dict:
        """The ``selection`` entry of ``metrics.json``."""
        if not self.carved:
            return {"split": eval_split, "carved": False,
                    "note": "selected on the reported split (select_fraction = 0): "
                            "the reported metrics are optimistic"}
        return {"split": f"{self.train_config.split} (held-out part)", "carved": True,
                "fraction": self.fraction, "seed": self.seed, "method": self.method,
                "num_examples": int(len(self.ids)), "ids_file": IDS_FILE}


def carve(train_cfg, eval_cfg, info: schema.DatasetInfo, fraction: float, seed: int,
          method: str) -> Selection:
    """The run's ``Selection``: ``fraction`` of the training split held out
    (``fraction = 0``: none, choices on ``eval_cfg``).

    Args:
      train_cfg: the training split's ``InputConfig``.
      eval_cfg: the evaluation split's ``InputConfig`` (its sizes, batch and
        preprocessing serve the selection part too).
      info: the dataset's ``DatasetInfo``.
      fraction: the held-out share of the training split, in ``[0, 1)``.
      seed: the draw's seed.
      method: ``"iterative"`` (label-stratified) or ``"random"``.
    """
    if not fraction:
        return Selection(train_cfg, eval_cfg,
                         schema.read_labels(train_cfg.data_dir, train_cfg.split),
                         method=method)
    if eval_cfg.data_dir == train_cfg.data_dir and eval_cfg.split == train_cfg.split:
        raise ValueError(f"the evaluation split is the training split ({train_cfg.split!r}); "
                         "report on another split")
    ids, labels = splits.read_ids_and_labels(train_cfg.data_dir, train_cfg.split, info)
    mask = splits.holdout_mask(labels, fraction, seed, method)
    if not mask.any():
        raise ValueError(f"select_fraction {fraction} of {len(ids)} {train_cfg.split} "
                         "examples selects none; raise it or set it to 0")
    chosen = tuple(ids[mask])
    select_cfg = dataclasses.replace(
        eval_cfg, data_dir=train_cfg.data_dir, split=train_cfg.split, training=False,
        keep_ids=chosen, drop_ids=None)
    return Selection(dataclasses.replace(train_cfg, drop_ids=chosen, keep_ids=None),
                     select_cfg, labels[~mask], ids[mask], fraction, seed, method)


def check_final(final: str) -> None:
    if final not in FINAL:
        raise SettingsError(f"mltf.train.final must be one of {', '.join(map(repr, FINAL))}, "
                            f"got {final!r}")


def final_weights(final: str, run, model, state) -> dict:
    """Puts the weights of the ``final`` epoch in ``model`` (the classifier)
    and returns the ``final`` entry of ``metrics.json``: ``choice``,
    ``epoch`` (as in ``training_log.csv``, 0 = the first) and, for
    ``"best"``, the checkpoint ``metric`` and its ``value``.

    ``"best"`` loads ``checkpoints/best.keras`` (the fit model: for a
    method's wrapper, its ``base_classifier()``; with ``ema_momentum`` it
    holds the averages); the optimizer keeps the last epoch's state. With no
    finite value of the metric in any epoch there is no best epoch: the last
    one is used, and the entry says so.
    """
    last = {"choice": "last", "epoch": state.rows[-1]["epoch"] if state.rows else None}
    if final == "last":
        return last
    if state.best is None:
        print(f"mltf.train: warning: final = 'best' but no epoch has a finite "
              f"{state.checkpoint_metric}; the last epoch's weights are used", flush=True)
        return {**last, "requested": "best",
                "note": f"no epoch has a finite {state.checkpoint_metric}"}
    if run.chief:
        saved = keras.models.load_model(os.path.join(state.checkpoint_dir, "best.keras"),
                                        compile=False)
        source = saved.base_classifier() if hasattr(saved, "base_classifier") else saved
        model.set_weights(source.get_weights())
    distribute.broadcast_variables(run.strategy, model.variables)
    return {"choice": "best", "epoch": state.best["epoch"], "metric": state.best["metric"],
            "value": state.best["value"]}


def evaluate(model, select_ds, eval_ds, label_names, tuning: Optional[dict], train_labels,
             truths=(None, None)):
    """The end of a run: ``(`` the evaluation split's report entries, the thresholds, its
    ``compute_all`` at the tuned thresholds, the ``threshold_choice`` entry
    (``metrics.choose_thresholds``'s report, ``unmet`` by label name), the
    selection split's entries, the evaluation split's ``(ids, labels,
    scores)``, the selection split's ``(labels, scores)`` ``)``, the tuned two
    None when ``tuning`` is None; the entries
    are ``metrics`` (``compute_all`` at 0.5), ``diagnostics``
    (``dependency_diagnostics`` at 0.5 against ``train_labels``, the
    matrices only up to ``MAX_MATRIX_LABELS`` labels; absent when
    ``train_labels`` is None) and, given the demo ``SceneTruth`` of the
    selection and the evaluation split (``truths``), ``demo`` (at 0.5) and,
    for the evaluation split, ``demo_tuned`` (at the tuned thresholds).

    The thresholds are chosen on ``select_ds`` by ``choose_thresholds`` with
    the arguments in ``tuning`` (``mode``, ``beta``, ``target``), and set on
    ``model``; ``eval_ds`` None means the
    selection split is the evaluation split, and then the tuned dict is
    optimistic: it says what the saved model's own thresholds do there, not
    what they would do on unseen images. Both datasets yield their ids.
    """
    def entries(ids, y, s, truth):
        out = {"metrics": metrics.compute_all(y, s)}
        if train_labels is not None:
            out["diagnostics"] = metrics.diagnostics_json(
                metrics.dependency_diagnostics(y, s, train_labels))
        found = demo.diagnostics_or_none(truth, ids, y, s, program="mltf.train")
        if found is not None:
            out["demo"] = found
        return out

    ids_sel, y_sel, s_sel = inference.predict_dataset(model, select_ds, with_ids=True)
    if eval_ds is None:  # the selection split is the evaluation split
        ids, y, s = ids_sel, y_sel, s_sel
    else:
        ids, y, s = inference.predict_dataset(model, eval_ds, with_ids=True)
    selected = entries(ids_sel, y_sel, s_sel, truths[0])
    results = selected if eval_ds is None else entries(ids, y, s, truths[1])
    predictions, select_predictions = (ids, y, s), (y_sel, s_sel)
    if tuning is None:
        return (results, np.full(len(label_names), 0.5, np.float32), None, None, selected,
                predictions, select_predictions)
    thresholds, choice = metrics.choose_thresholds(y_sel, s_sel, **tuning)
    if "unmet" in choice:
        choice["unmet"] = [label_names[j] for j in choice["unmet"]]
    model.set_thresholds(thresholds)
    # The model's float32 copy, so the numbers are those of
    # ``mltf.evaluate --thresholds=model``.
    saved = keras.ops.convert_to_numpy(model.thresholds)
    if "demo" in results:
        results = {**results, "demo_tuned": demo.diagnostics_or_none(
            truths[1], ids, y, s, saved, program="mltf.train")}
    return (results, thresholds, metrics.compute_all(y, s, threshold=saved), choice, selected,
            predictions, select_predictions)
