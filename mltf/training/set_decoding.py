"""Set-level decoding at the end of a run (``mltf.train.set_decoding``):
``w`` chosen on the selection split, the decoded sets of the evaluation split
reported as ``metrics_set_decoded`` in ``metrics.json``, and what
``mltf.evaluate`` needs to decode again written to the run folder.

The decoder is ``mltf.decoding``; the dependency scores come from the
method's ``set_scorer`` hook (``scorer = "method"``; None: BCE, the decoding
then re-ranks by the classifier's likelihood alone, so only ``w = 0`` is
tried) or, for any method, from the label-set prior ``log(1 + training
count of Y)`` (``scorer = "prior"``). Files, chief only:
``set_scorer.keras`` (the method's scorer, when there is one) and
``set_decoding.npz`` (``w``, ``k``, ``m``, ``metric``, ``shift``,
``scorer``, ``knn`` and the training split's distinct label sets with their counts,
the candidates' source and the prior), from which ``mltf.evaluate
--set_decoding`` decodes again (``decode_saved``). The decoded sets of the
reported split go to ``predictions.npz`` as ``decoded`` (the trainer).
"""

import os
from typing import Optional, Sequence

import gin
import keras
import numpy as np

from mltf import decoding, methods
from mltf.methods import scoring
from mltf.utils import atomic

SCORER_FILE = "set_scorer.keras"
SETTINGS_FILE = "set_decoding.npz"
SCORERS = ("method", "prior")


@gin.configurable(module="mltf")
def set_decoding_options(k: int = 3, m: int = 8,
                         grid: Sequence[float] = decoding.DEFAULT_GRID,
                         metric: str = "example_F1", shift: bool = True,
                         scorer: str = "method", knn: int = 0) -> dict:
    """How ``mltf.train.set_decoding`` decodes (gin:
    ``mltf.set_decoding_options.*``).

    Args:
      k: labels nearest their threshold flipped in all 2^k combinations.
      m: likeliest distinct training sets added per image.
      grid: weights ``w`` tried on the selection split (0 always is).
      metric: the ``compute_all`` key ``w`` maximises there.
      shift: the likelihood of the marginals shifted to the thresholds, whose
        likeliest set is the thresholded one (``mltf.decoding``); False: of
        the raw marginals (likeliest set ``p >= 0.5``).
      scorer: ``"method"``: the method's dependency model (none for BCE);
        ``"prior"``: ``log(1 + count)`` of the set among the training split's
        label sets (``mltf.decoding.prior_scores``), for every method.
      knn: also the ``knn`` distinct training sets nearest each image under
        the method's embedding distance d(f_I(x), f_y(Y))
        (``scoring.nearest_sets``; RETDM, ``scorer = "method"``); 0: none.
    """
    if scorer not in SCORERS:
        raise ValueError(f"mltf.set_decoding_options.scorer must be one of {SCORERS}, "
                         f"got {scorer!r}")
    if int(knn) < 0:
        raise ValueError(f"mltf.set_decoding_options.knn must be >= 0, got {knn}")
    return {"k": int(k), "m": int(m), "grid": [float(w) for w in grid], "metric": metric,
            "shift": bool(shift), "scorer": scorer, "knn": int(knn)}


def check_options(plugin, options: Optional[dict] = None) -> None:
    """At the start of a run (or of ``mltf.decode``): ``SettingsError`` for
    kNN candidates that the method or the scorer cannot give (no label
    embedding); ``options`` default: ``set_decoding_options()``."""
    options = options or set_decoding_options()
    if options["knn"] and not (plugin.knn_candidates and options["scorer"] == "method"):
        raise methods.SettingsError(
            f"mltf.set_decoding_options.knn = {options['knn']} needs a method whose "
            "dependency model embeds label sets (retdm) and scorer = 'method'; this run has "
            f"method {plugin.name!r}, scorer {options['scorer']!r}: bind knn = 0")


def write_settings(path: str, w: float, options: dict, table) -> None:
    """``set_decoding.npz``: the chosen ``w``, the options and the label-set table."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, w=w, k=options["k"], m=options["m"], metric=options["metric"],
                     shift=options["shift"], scorer=options["scorer"],
                     knn=options.get("knn", 0), sets=table.sets, counts=table.counts)

    atomic.atomic_write(path, write)


def read_settings(folder: str) -> dict:
    """``set_decoding.npz`` of a run folder: ``w``, ``k``, ``m``, ``metric``,
    ``shift``, ``scorer``, ``knn`` and the ``LabelSetTable``; FileNotFoundError
    naming the binding."""
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: set-level decoding needs a run trained "
                                "with mltf.train.set_decoding = True")
    with np.load(path) as saved:
        return {"w": float(saved["w"]), "k": int(saved["k"]), "m": int(saved["m"]),
                "metric": str(saved["metric"]), "shift": bool(saved["shift"]),
                # Files written before the prior existed hold the method's scorer.
                "scorer": str(saved["scorer"]) if "scorer" in saved.files else "method",
                "knn": int(saved["knn"]) if "knn" in saved.files else 0,
                "table": decoding.LabelSetTable(saved["sets"], saved["counts"])}


def _dependency(kind, scorer, table, dataset, sets):
    """``dep [N, K]`` of candidate ``sets`` (None: no dependency model)."""
    if kind == "prior":
        return decoding.prior_scores(table, sets)
    return None if scorer is None else scoring.dependency_scores(scorer, dataset, sets)


def _nearest(scorer, dataset, table, settings):
    """The kNN candidates' indices ``[N, knn]`` (None for ``knn = 0``)."""
    knn = settings.get("knn", 0)
    if not knn:
        return None
    if not hasattr(scorer, "embed_sets"):
        raise ValueError(f"mltf.set_decoding_options.knn = {knn} needs a scorer that embeds "
                         f"label sets (EmbeddingSetScorer), not {type(scorer).__name__}")
    return scoring.nearest_sets(scorer, dataset, table.sets, knn)


def _decode(scorer, dataset, y, p, thresholds, table, settings, w):
    """(the entries of one split's decoding at ``w``, its decoded sets
    ``[N, C]``) (``dataset`` holds the images of ``p``'s rows, in order;
    ``settings``: ``k``, ``m``, ``shift``, ``scorer``)."""
    cands, index, sets = _decoded(scorer, dataset, p, thresholds, table, settings, w)
    name = ("LabelSetPrior" if settings["scorer"] == "prior"
            else type(scorer).__name__ if scorer is not None else None)
    return {"metrics": decoding.evaluate_sets(y, p, sets), "w": w, "scorer": name,
            "k": settings["k"], "m": settings["m"], "shift": settings["shift"],
            "knn": settings.get("knn", 0),
            "candidates_per_image": float(cands.valid.sum(axis=1).mean()),
            "changed_sets": float((index != 0).mean())}, sets


def _decoded(scorer, dataset, p, thresholds, table, settings, w):
    """(the candidates, each image's chosen slot ``[N]``, its set ``[N, C]``)."""
    k, m, shift = settings["k"], settings["m"], settings["shift"]
    cands = decoding.candidate_sets(p, thresholds, table, k, m, shift,
                                    _nearest(scorer, dataset, table, settings))
    # At w = 0 the decoding reads the likelihood alone: no scorer pass.
    dep = None if w == 0 else _dependency(settings["scorer"], scorer, table, dataset,
                                          cands.sets)
    loglik = decoding.log_likelihood(p, cands.sets, thresholds if shift else None)
    index = decoding.decode(loglik, dep, cands.valid, w)
    return cands, index, decoding.chosen_sets(cands, index)


def load_saved(folder: str):
    """(``read_settings(folder)``, the method's scorer from
    ``set_scorer.keras`` or None: the prior, or a method without one)."""
    settings = read_settings(folder)
    scorer_path = os.path.join(folder, SCORER_FILE)
    scorer = None
    if settings["scorer"] == "method" and os.path.isfile(scorer_path):
        methods.load_all()  # the scorer's sub-models' classes (the critic)
        scorer = keras.models.load_model(scorer_path, compile=False)
    return settings, scorer


def decode_saved(folder: str, dataset, y, p, thresholds) -> dict:
    """``mltf.evaluate --set_decoding``: one split decoded with what the run
    folder ``folder`` saved (``load_saved``)."""
    settings, scorer = load_saved(folder)
    return _decode(scorer, dataset, y, p, thresholds, settings["table"], settings,
                   settings["w"])[0]


def decode_saved_sets(folder: str, dataset, p, thresholds) -> np.ndarray:
    """``mltf.predict --set_decoding``: the decoded sets ``[N, C]`` (uint8)
    of images without labels, as ``decode_saved`` chooses them (``dataset``
    yields ``(x, anything)`` batches of ``p``'s rows, in order)."""
    settings, scorer = load_saved(folder)
    return _decoded(scorer, dataset, p, thresholds, settings["table"], settings,
                    settings["w"])[2]


def choose_and_decode(scorer, options: dict, table, thresholds, select, evaluate):
    """(the ``metrics_set_decoded`` entry, the reported split's decoded sets
    ``[N, C]``): ``w`` chosen on the selection split by ``options['metric']``,
    then the reported split decoded at it.

    Args:
      scorer: the method's ``SetScorer`` or None (the prior, or BCE).
      options: ``set_decoding_options()``'s dict.
      table: the training split's ``LabelSetTable``.
      thresholds: the classifier's per-class thresholds ``[C]``.
      select: the selection split's ``(dataset, labels, scores)``, the
        dataset one pass over the images of the scores' rows, in order.
      evaluate: the reported split's ``(dataset, labels, scores)``.
    """
    select_ds, y_sel, p_sel = select
    sel = decoding.candidate_sets(p_sel, thresholds, table, options["k"], options["m"],
                                  options["shift"], _nearest(scorer, select_ds, table, options))
    dep_sel = _dependency(options["scorer"], scorer, table, select_ds, sel.sets)
    w, figures = decoding.choose_weight(y_sel, p_sel, sel, dep_sel, options["grid"],
                                        options["metric"],
                                        thresholds if options["shift"] else None)
    thresholded = decoding.evaluate_sets(y_sel, p_sel, sel.sets[:, 0])[options["metric"]]
    entry, sets = _decode(scorer, *evaluate, thresholds, table, options, w)
    entry.update({"grid": [f["w"] for f in figures], "metric": options["metric"],
                  "selection": figures, "selection_thresholded": thresholded})
    return entry, sets


def save(folder: str, scorer, options: dict, table, w: float, save_model) -> None:
    """Writes what ``decode_saved`` reads: ``set_scorer.keras`` (when there
    is a scorer, by ``save_model(model, path)``) and ``set_decoding.npz``."""
    if scorer is not None:
        save_model(scorer, os.path.join(folder, SCORER_FILE))
    write_settings(os.path.join(folder, SETTINGS_FILE), w, options, table)


def summary_line(entry: dict) -> str:
    """One line on the choice of ``w`` (the end of a run, ``mltf.decode``)."""
    metric, figures = entry["metric"], entry["selection"]
    return (f"Set-level decoding ({entry['scorer'] or 'likelihood only'}): w = {entry['w']:g} "
            f"chosen on the selection split ({metric} {100 * figures[0][metric]:.2f} at w = 0, "
            f"{100 * max(f[metric] for f in figures):.2f} at w; thresholded "
            f"{100 * entry['selection_thresholded']:.2f}); {100 * entry['changed_sets']:.1f}% "
            "of the reported sets differ from the thresholded ones (metrics_set_decoded)")


def decode_run(plugin, run, fit_model, model, select_ds, eval_ds: Optional[object],
               predictions, select_predictions):
    """(the ``metrics_set_decoded`` entry, the evaluation split's decoded
    sets ``[N, C]`` uint8); writes the run folder's files.

    Args:
      plugin: the run's ``Method``.
      run: the ``Run``.
      fit_model: the trained model (the scorer's source).
      model: the classifier, its thresholds already chosen.
      select_ds: the selection split (one pass, the order of its predictions).
      eval_ds: the evaluation split, or None when it is the selection split.
      predictions: the evaluation split's ``(ids, labels, scores)``.
      select_predictions: the selection split's ``(labels, scores)`` by
        ``model`` (``selection.evaluate``'s; not predicted again).
    """
    options = set_decoding_options()
    scorer = plugin.set_scorer(run, fit_model) if options["scorer"] == "method" else None
    table = decoding.LabelSetTable.from_labels(run.train_labels)
    thresholds = keras.ops.convert_to_numpy(model.thresholds)
    entry, sets = choose_and_decode(
        scorer, options, table, thresholds, (select_ds, *select_predictions),
        (select_ds if eval_ds is None else eval_ds, *predictions[1:]))
    if run.chief:
        save(run.model_dir, scorer, options, table, entry["w"], run.save_model)
    print(summary_line(entry), flush=True)
    return entry, sets
