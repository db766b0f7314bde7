"""Set-level decoding at the end of a run (``mltf.train.set_decoding``):
``w`` chosen on the selection split, the decoded sets of the evaluation split
reported as ``metrics_set_decoded`` in ``metrics.json``, and what
``mltf.evaluate`` needs to decode again written to the run folder.

The decoder is ``mltf.decoding``; the dependency scores come from the
method's ``set_scorer`` hook (None: BCE, the decoding then re-ranks by the
classifier's likelihood alone, so only ``w = 0`` is tried). Files, chief
only: ``set_scorer.keras`` (the scorer, when the method has one) and
``set_decoding.npz`` (``w``, ``k``, ``m``, ``metric``, ``shift`` and the
training split's distinct label sets with their counts, the candidates'
source), from which ``mltf.evaluate --set_decoding`` decodes again
(``decode_saved``).
"""

import os
from typing import Optional, Sequence

import gin
import keras
import numpy as np

from mltf import decoding, inference, methods
from mltf.methods import scoring
from mltf.utils import atomic

SCORER_FILE = "set_scorer.keras"
SETTINGS_FILE = "set_decoding.npz"


@gin.configurable(module="mltf")
def set_decoding_options(k: int = 3, m: int = 8,
                         grid: Sequence[float] = decoding.DEFAULT_GRID,
                         metric: str = "example_F1", shift: bool = True) -> dict:
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
    """
    return {"k": int(k), "m": int(m), "grid": [float(w) for w in grid], "metric": metric,
            "shift": bool(shift)}


def write_settings(path: str, w: float, options: dict, table) -> None:
    """``set_decoding.npz``: the chosen ``w``, the options and the label-set table."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, w=w, k=options["k"], m=options["m"], metric=options["metric"],
                     shift=options["shift"], sets=table.sets, counts=table.counts)

    atomic.atomic_write(path, write)


def read_settings(folder: str) -> dict:
    """``set_decoding.npz`` of a run folder: ``w``, ``k``, ``m``, ``metric``,
    ``shift`` and the ``LabelSetTable``; FileNotFoundError naming the binding."""
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: set-level decoding needs a run trained "
                                "with mltf.train.set_decoding = True")
    with np.load(path) as saved:
        return {"w": float(saved["w"]), "k": int(saved["k"]), "m": int(saved["m"]),
                "metric": str(saved["metric"]), "shift": bool(saved["shift"]),
                "table": decoding.LabelSetTable(saved["sets"], saved["counts"])}


def _decode(scorer, dataset, y, p, thresholds, table, settings, w) -> dict:
    """The entries of one split's decoding at ``w`` (``dataset`` holds the
    images of ``p``'s rows, in order; ``settings``: ``k``, ``m``, ``shift``)."""
    k, m, shift = settings["k"], settings["m"], settings["shift"]
    cands = decoding.candidate_sets(p, thresholds, table, k, m, shift)
    dep = None if scorer is None else scoring.dependency_scores(scorer, dataset, cands.sets)
    loglik = decoding.log_likelihood(p, cands.sets, thresholds if shift else None)
    index = decoding.decode(loglik, dep, cands.valid, w)
    return {"metrics": decoding.evaluate_sets(y, p, decoding.chosen_sets(cands, index)),
            "w": w, "scorer": type(scorer).__name__ if scorer is not None else None,
            "k": k, "m": m, "shift": shift,
            "candidates_per_image": float(cands.valid.sum(axis=1).mean()),
            "changed_sets": float((index != 0).mean())}


def decode_saved(folder: str, dataset, y, p, thresholds) -> dict:
    """``mltf.evaluate --set_decoding``: one split decoded with what the run
    folder ``folder`` saved (``read_settings``, ``set_scorer.keras``)."""
    settings = read_settings(folder)
    scorer_path = os.path.join(folder, SCORER_FILE)
    scorer = None
    if os.path.isfile(scorer_path):
        methods.load_all()  # the scorer's sub-models' classes (the critic)
        scorer = keras.models.load_model(scorer_path, compile=False)
    return _decode(scorer, dataset, y, p, thresholds, settings["table"], settings,
                   settings["w"])


def decode_run(plugin, run, fit_model, model, select_ds, eval_ds: Optional[object],
               predictions) -> dict:
    """The ``metrics_set_decoded`` entry; writes the run folder's files.

    Args:
      plugin: the run's ``Method``.
      run: the ``Run``.
      fit_model: the trained model (the scorer's source).
      model: the classifier, its thresholds already chosen.
      select_ds: the selection split (one pass, the order of its predictions).
      eval_ds: the evaluation split, or None when it is the selection split.
      predictions: the evaluation split's ``(ids, labels, scores)``.
    """
    options = set_decoding_options()
    scorer = plugin.set_scorer(run, fit_model)
    table = decoding.LabelSetTable.from_labels(run.train_labels)
    thresholds = keras.ops.convert_to_numpy(model.thresholds)
    y_sel, p_sel = inference.predict_dataset(model, select_ds)
    sel = decoding.candidate_sets(p_sel, thresholds, table, options["k"], options["m"],
                                  options["shift"])
    dep_sel = None if scorer is None else scoring.dependency_scores(scorer, select_ds, sel.sets)
    w, figures = decoding.choose_weight(y_sel, p_sel, sel, dep_sel, options["grid"],
                                        options["metric"],
                                        thresholds if options["shift"] else None)
    thresholded = decoding.evaluate_sets(y_sel, p_sel, sel.sets[:, 0])[options["metric"]]
    _, y, p = predictions
    entry = _decode(scorer, select_ds if eval_ds is None else eval_ds, y, p, thresholds, table,
                    options, w)
    entry.update({"grid": [f["w"] for f in figures], "metric": options["metric"],
                  "selection": figures, "selection_thresholded": thresholded})
    if run.chief:
        if scorer is not None:
            run.save_model(scorer, os.path.join(run.model_dir, SCORER_FILE))
        write_settings(os.path.join(run.model_dir, SETTINGS_FILE), w, options, table)
    metric = options["metric"]
    print(f"Set-level decoding ({entry['scorer'] or 'likelihood only'}): w = {w:g} chosen on "
          f"the selection split ({metric} {100 * figures[0][metric]:.2f} at w = 0, "
          f"{100 * max(f[metric] for f in figures):.2f} at w; thresholded "
          f"{100 * thresholded:.2f}); {100 * entry['changed_sets']:.1f}% of the reported "
          "sets differ from the thresholded ones (metrics_set_decoded)", flush=True)
    return entry
