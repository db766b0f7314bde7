"""Set-level decoding at the end of a run (``mltf.train.set_decoding``):
``w`` chosen on the selection split, the decoded sets of the evaluation split
reported as ``metrics_set_decoded`` in ``metrics.json``, and what
``mltf.evaluate`` needs to decode again written to the run folder.

The decoder is ``mltf.decoding``; the dependency scores come from the
method's ``set_scorer`` hook (None: BCE, the decoding then re-ranks by the
classifier's likelihood alone, so only ``w = 0`` is tried). Files, chief
only: ``set_scorer.keras`` (the scorer, when the method has one) and
``set_decoding.npz`` (``w``, ``k``, ``m``, ``metric`` and the training
split's distinct label sets with their counts, the candidates' source).
"""

import os
from typing import Optional, Sequence

import gin
import keras
import numpy as np

from mltf import decoding, inference
from mltf.methods import scoring
from mltf.utils import atomic

SCORER_FILE = "set_scorer.keras"
SETTINGS_FILE = "set_decoding.npz"


@gin.configurable(module="mltf")
def set_decoding_options(k: int = 3, m: int = 8,
                         grid: Sequence[float] = decoding.DEFAULT_GRID,
                         metric: str = "example_F1") -> dict:
    """How ``mltf.train.set_decoding`` decodes (gin:
    ``mltf.set_decoding_options.*``).

    Args:
      k: labels nearest their threshold flipped in all 2^k combinations.
      m: likeliest distinct training sets added per image.
      grid: weights ``w`` tried on the selection split (0 always is).
      metric: the ``compute_all`` key ``w`` maximises there.
    """
    return {"k": int(k), "m": int(m), "grid": [float(w) for w in grid], "metric": metric}


def write_settings(path: str, w: float, options: dict, table) -> None:
    """``set_decoding.npz``: the chosen ``w``, the options and the label-set table."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, w=w, k=options["k"], m=options["m"], metric=options["metric"],
                     sets=table.sets, counts=table.counts)

    atomic.atomic_write(path, write)


def _dep(scorer, dataset, candidates):
    if scorer is None:
        return None
    return scoring.dependency_scores(scorer, dataset, candidates.sets)


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

    def candidates(p):
        return decoding.candidate_sets(p, thresholds, table, options["k"], options["m"])

    y_sel, p_sel = inference.predict_dataset(model, select_ds)
    sel = candidates(p_sel)
    w, figures = decoding.choose_weight(y_sel, p_sel, sel, _dep(scorer, select_ds, sel),
                                        options["grid"], options["metric"])
    thresholded = decoding.evaluate_sets(y_sel, p_sel, sel.sets[:, 0])[options["metric"]]
    _, y, p = predictions
    cands = candidates(p)
    dep = _dep(scorer, select_ds if eval_ds is None else eval_ds, cands)
    index = decoding.decode(decoding.log_likelihood(p, cands.sets), dep, cands.valid, w)
    entry = {"metrics": decoding.evaluate_sets(y, p, decoding.chosen_sets(cands, index)),
             "w": w, "grid": [f["w"] for f in figures], "metric": options["metric"],
             "selection": figures, "selection_thresholded": thresholded,
             "scorer": type(scorer).__name__ if scorer is not None else None,
             "k": options["k"], "m": options["m"],
             "candidates_per_image": float(cands.valid.sum(axis=1).mean()),
             "changed_sets": float((index != 0).mean())}
    if run.chief:
        if scorer is not None:
            run.save_model(scorer, os.path.join(run.model_dir, SCORER_FILE))
        write_settings(os.path.join(run.model_dir, SETTINGS_FILE), w, options, table)
    print(f"Set-level decoding ({entry['scorer'] or 'likelihood only'}): w = {w:g} chosen on "
          f"the selection split ({options['metric']} {100 * figures[0][options['metric']]:.2f} "
          f"at w = 0, {100 * max(f[options['metric']] for f in figures):.2f} at w; "
          f"thresholded {100 * thresholded:.2f}); {100 * entry['changed_sets']:.1f}% of the "
          f"reported sets differ from the thresholded ones (metrics_set_decoded)", flush=True)
    return entry
