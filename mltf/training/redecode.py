"""Set-level decoding of a finished run, chosen again on its own selection
split (``mltf.decode``, ``benchmarks/decoding_scorers.py``).

A run folder holds everything set-level decoding needs, whether or not it
was trained with ``mltf.train.set_decoding``: the classifier with its tuned
thresholds (``model.keras``), the ids of the selection split carved from the
training split (``select_ids.txt``), the reported split (``metrics.json``)
and the fit model of the final epoch (``checkpoints/best.keras`` or
``last.keras``, as ``metrics.json``'s ``final`` says), whose critic or label
embedding is the method's scorer. ``FinishedRun`` reads them once; each
``decode(options)`` then chooses ``w`` on the selection split and decodes
the reported split exactly as the end of a run does
(``set_decoding.choose_and_decode``), for any ``set_decoding_options``.
"""

import json
import os
from typing import Optional

import keras
import numpy as np

from mltf import decoding, inference, methods, metrics
from mltf.data import schema, splits
from mltf.training import run_files, selection, set_decoding

HELD_OUT = " (held-out part)"


class FinishedRun:
    """A finished run folder read back for set-level decoding.

    Args:
      run_dir: the run folder ``mltf.train`` wrote (``metrics.json``,
        ``model.keras``, ``select_ids.txt``, ``checkpoints/``).
      batch_size: the inference batch size.
      checkpoint: the fit model's file under ``checkpoints/`` (``"best"`` or
        ``"last"``); None: the run's final choice (``metrics.json``).
      data_dir: the dataset folder, when it moved since the run (None: the
        one ``metrics.json`` names).
      threshold_mode: None: the classifier's saved thresholds; else a
        ``mltf.metrics.choose_thresholds`` mode (``"global"``, ``"f1"``, ...)
        whose thresholds are chosen again on the selection split, for runs
        whose own (per-class F1 on a small split) are poor.
    """

    def __init__(self, run_dir: str, batch_size: int = 256, checkpoint: Optional[str] = None,
                 data_dir: Optional[str] = None, threshold_mode: Optional[str] = None):
        import pipelines
        self.run_dir = run_dir
        path = os.path.join(run_dir, "metrics.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{run_dir} is not a finished run folder: no metrics.json")
        with open(path) as f:
            self.report = json.load(f)
        self.method = self.report.get("method", "bce")
        self.checkpoint = checkpoint or self.report.get("final", {}).get("choice", "last")
        self.model, _, spec = inference.load_for_inference(os.path.join(run_dir, "model.keras"))
        self.thresholds = inference.model_thresholds(self.model)
        data_dir, split = data_dir or self.report["data_dir"], self.report["split"]
        info = schema.read_info(data_dir)

        def dataset(name, keep_ids=None):
            config = pipelines.InputConfig(
                data_dir, name, batch_size=batch_size, training=False,
                image_size=spec.image_size or 224, preprocessing=spec.preprocessing,
                with_ids=True, keep_ids=keep_ids)
            return pipelines.make_dataset(config, info=info)

        eval_ds = dataset(split)
        self.ids, y, p = inference.predict_dataset(self.model, eval_ds, with_ids=True)
        self.evaluate = (eval_ds, y, p)
        chosen = self.report.get("selection", {})
        self.carved = bool(chosen.get("carved"))
        if self.carved:
            train_split = chosen["split"].removesuffix(HELD_OUT)
            keep = _read_ids(os.path.join(run_dir, chosen.get("ids_file", selection.IDS_FILE)))
            ids, labels = splits.read_ids_and_labels(data_dir, train_split, info)
            held = np.isin(ids, list(keep))
            if held.sum() != len(keep):
                raise ValueError(f"{run_dir}'s {len(keep)} selection ids are not all in the "
                                 f"{train_split!r} split of {data_dir} ({held.sum()} found)")
            self.train_labels = labels[~held]
            select_ds = dataset(train_split, tuple(sorted(keep)))
            self.select = (select_ds, *inference.predict_dataset(self.model, select_ds))
        else:  # the run chose on its reported split: so does its decoding (optimistic)
            self.train_labels = schema.read_labels(data_dir, "train")
            self.select = self.evaluate
        if threshold_mode:
            self.thresholds = np.asarray(metrics.choose_thresholds(
                *self.select[1:], mode=threshold_mode)[0], np.float32)
        self.table = decoding.LabelSetTable.from_labels(self.train_labels)
        self._scorer = None

    @property
    def plugin(self):
        return methods.get(self.method)

    def scorer(self):
        """The method's ``SetScorer`` from the final epoch's fit model (None
        for a method without one, BCE)."""
        if self._scorer is None:
            path = os.path.join(self.run_dir, "checkpoints", f"{self.checkpoint}.keras")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found: the method's scorer comes from the "
                                        "fit model of the run's final epoch")
            methods.load_all()  # the classes of the fit model's sub-models
            fit_model = keras.models.load_model(path, compile=False)
            self._scorer = (self.plugin.set_scorer(None, fit_model),)
        return self._scorer[0]

    def check(self, options: dict) -> None:
        """``SettingsError`` (a ``ValueError``) for options this run's method
        cannot decode with, as at the start of a run."""
        set_decoding.check_options(self.plugin, options)

    def decode(self, options: dict):
        """(the ``metrics_set_decoded`` entry, the reported split's decoded
        sets ``[N, C]`` in ``self.ids``' order) under ``options``
        (``set_decoding.set_decoding_options()``'s dict)."""
        self.check(options)
        scorer = self.scorer() if options["scorer"] == "method" else None
        return set_decoding.choose_and_decode(scorer, options, self.table, self.thresholds,
                                              self.select, self.evaluate)

    def save(self, options: dict, w: float) -> None:
        """Writes ``set_decoding.npz`` (and ``set_scorer.keras``) into the
        run folder, so ``mltf.evaluate``, ``mltf.predict`` and ``mltf.export``
        ``--set_decoding`` decode as ``decode(options)`` chose."""
        scorer = self.scorer() if options["scorer"] == "method" else None
        set_decoding.save(self.run_dir, scorer, options, self.table, w, run_files.save_model)


def _read_ids(path: str) -> set:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: the run's selection ids")
    with open(path) as f:
        return {line.rstrip("\n") for line in f if line.strip()}
