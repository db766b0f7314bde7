"""Set-level decoding: whole label sets chosen per image by the classifier's
marginals and, where a method has one, its label-dependency model.

A classifier trained with BCE predicts each label on its own (the
thresholded set). A dependency model (the WGAN-gp critic D(y, x), RETDM's
embedding distance d(f_I(x), f_y(y))) scores whole sets, so the set can be
chosen among a few candidates instead:

- candidates per image (``candidate_sets``): the thresholded set; its flips
  on the ``k`` labels whose probability is nearest their threshold (all 2^k
  combinations, the thresholded set being the one with no flip); and the
  ``m`` distinct training label sets of highest classifier log-likelihood
  (``LabelSetTable``); given ``nearest`` (RETDM: the training sets nearest
  the image in the learned embedding, ``scoring.nearest_sets``), those sets
  after them; duplicates marked invalid, so the first copy counts;
- the score of a candidate Y for image x
  ``score(Y) = loglik_q(Y) + w * dep(Y, x)``, with
  ``loglik_q(Y) = sum_j y_j log q_j + (1 - y_j) log(1 - q_j)``; the argmax per
  image is the decoded set (ties: the earlier candidate). ``q`` is ``p``
  shifted to the thresholds, ``logit q = logit p - logit t``
  (``shift_to_thresholds``), so that the likeliest set is the thresholded
  one: tuned thresholds are the classifier's calibration, and the raw
  ``p``'s likeliest sets (``p >= 0.5``) lost 8.4 points of example-F1 to the
  tuned thresholded sets on the demo (one BCE run, 2026-12-01); ``q = p`` at
  thresholds of 0.5, or without ``thresholds``;
- ``w`` is chosen on the selection split (``choose_weight``) from a grid
  holding 0, by a named metric (example-F1 by default), ties towards the
  smaller ``w``; at ``w = 0`` the decoded set is the candidate of highest
  classifier likelihood (with the shift: the thresholded set).

This module is numpy only: ``dep`` is an array ``[N, K]`` that a method's
scorer (``Method.set_scorer``) computed over the same candidates, or the
label-set prior ``log(1 + training count of Y)`` (``prior_scores``).
"""

import dataclasses
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mltf import metrics
from mltf.data.label_sets import distinct_label_sets

# log p is clipped here: a saturated sigmoid (p == 1.0 in float32) must not
# make every set without that label -inf and so tie them all.
EPSILON = 1e-7
# The shift clips p and t only to float64's open interval (0, 1): clipped to
# EPSILON, a rare label's score and its tuned threshold both under 1e-7 (5e-10
# and 7e-8 in the NUS-WIDE simulation) made q = 0.5, so that label was flipped
# first and a tie put it in 16 % of the sets decoded at w = 0.
SHIFT_BOUNDS = (float(np.finfo(np.float64).tiny), float(np.nextafter(1.0, 0.0)))
# Dependency scores have no common scale (a critic's are unbounded, RETDM's
# distances depend on the embedding), so the grid spans four decades.
DEFAULT_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclasses.dataclass
class LabelSetTable:
    """The distinct label sets of the training split, with their frequency.

    Args:
      sets: distinct multi-hot sets ``[D, C]`` (uint8).
      counts: how many training examples carry each set ``[D]``.
    """
    sets: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_labels(cls, labels) -> "LabelSetTable":
        sets, _, counts = distinct_label_sets(labels)
        return cls(sets, counts)


@dataclasses.dataclass
class Candidates:
    """Candidate label sets of N images, K slots each.

    Args:
      sets: ``[N, K, C]`` uint8; slot 0 is the thresholded set.
      valid: ``[N, K]`` bool, False for a repeat of an earlier slot.
    """
    sets: np.ndarray
    valid: np.ndarray


def _log_probs(p):
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(p), np.log1p(-p)


def shift_logits(p, thresholds) -> np.ndarray:
    """``logit q = logit p - logit t`` (``t`` scalar or ``[C]``): ``>= 0``
    exactly where ``p >= t``, finite for any ``p``, ``t`` in [0, 1]."""
    p = np.clip(np.asarray(p, np.float64), *SHIFT_BOUNDS)
    t = np.clip(np.asarray(thresholds, np.float64), *SHIFT_BOUNDS)
    return _logit(p) - _logit(t)


def shift_to_thresholds(p, thresholds) -> np.ndarray:
    """``q`` with ``logit q = logit p - logit t``: ``q >= 0.5`` exactly where
    ``p >= t`` (``t`` scalar or ``[C]``)."""
    return _sigmoid(shift_logits(p, thresholds))


def _sigmoid(z):
    with np.errstate(over="ignore"):  # exp(745) is inf: q = 0, as it should
        return 1.0 / (1.0 + np.exp(-z))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def log_likelihood(p, sets, thresholds=None) -> np.ndarray:
    """``loglik(Y)`` of candidate sets ``[N, K, C]`` under independent
    Bernoulli marginals ``p`` ``[N, C]`` (shifted to ``thresholds`` when
    given: ``shift_to_thresholds``): ``[N, K]``."""
    if thresholds is not None:
        p = shift_to_thresholds(p, thresholds)
    log_p, log_q = _log_probs(p)
    sets = np.asarray(sets, np.float64)
    return np.einsum("nkc,nc->nk", sets, log_p) + np.einsum("nkc,nc->nk", 1.0 - sets, log_q)


def likeliest_sets(p, table: LabelSetTable, m: int, chunk: int = 1024) -> np.ndarray:
    """Indices ``[N, m]`` into ``table.sets`` of each image's ``m`` training
    sets of highest log-likelihood, best first; equal likelihoods: the more
    frequent set first, then the lower index (``m`` is capped at D)."""
    log_p, log_q = _log_probs(p)
    sets = table.sets.astype(np.float64)
    m = min(int(m), len(sets))
    out = np.empty((len(log_p), m), np.int64)
    tie = tie_offsets(table.counts)
    for start in range(0, len(log_p), chunk):
        lp, lq = log_p[start:start + chunk], log_q[start:start + chunk]
        key = -(lq.sum(axis=1, keepdims=True) + (lp - lq) @ sets.T) + tie[None, :]
        part = np.argpartition(key, m - 1, axis=1)[:, :m]
        rank = np.take_along_axis(key, part, axis=1).argsort(axis=1, kind="stable")
        out[start:start + chunk] = np.take_along_axis(part, rank, axis=1)
    return out


def tie_offsets(counts) -> np.ndarray:
    """``[D]`` offsets added to the sort key (minus the log-likelihood) of
    the training sets with ``counts``, so that equal likelihoods rank the
    more frequent set first, then the lower index; far below any likelihood
    gap of different sets, which is at least one |log p - log(1 - p)| term."""
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    tie = np.empty(len(counts))
    tie[order] = np.arange(len(counts)) * 1e-12
    return tie


def flip_patterns(k: int) -> np.ndarray:
    """All 2^k flip masks, the empty one first: ``[2^k, k]``."""
    return np.array(list(itertools.product((0, 1), repeat=k)), np.uint8).reshape(2 ** k, k)


def _mark_repeats(sets) -> np.ndarray:
    """``valid [N, K]``: False where a slot repeats an earlier slot of its image."""
    packed = np.packbits(sets, axis=-1)  # [N, K, ceil(C / 8)]
    n, k = sets.shape[:2]
    valid = np.ones((n, k), bool)
    for j in range(1, k):
        same = (packed[:, :j] == packed[:, j:j + 1]).all(axis=-1)  # [N, j]
        valid[:, j] = ~same.any(axis=1)
    return valid


def candidate_sets(p, thresholds, table: Optional[LabelSetTable] = None, k: int = 3,
                   m: int = 8, shift: bool = True, nearest=None) -> Candidates:
    """The candidates of the module docstring.

    Args:
      p: the classifier's probabilities ``[N, C]``.
      thresholds: scalar or ``[C]``; the thresholded set is ``p >= t``.
      table: the training split's ``LabelSetTable``; None: no training sets.
      k: labels flipped in every combination (those with ``|logit p -
        logit t|`` smallest, what a flip costs in the shifted likelihood;
        ``min(k, C)``).
      m: training sets of highest likelihood per image.
      shift: rank the training sets by the likelihood of ``p`` shifted to the
        thresholds (as ``log_likelihood(p, sets, thresholds)`` scores them).
      nearest: indices ``[N, K']`` into ``table.sets`` added last (the kNN
        candidates), or None.
    """
    p = np.asarray(p, np.float64)
    n, c = p.shape
    t = np.broadcast_to(np.asarray(thresholds, np.float64), (c,))
    base = (p >= t[None, :]).astype(np.uint8)
    k = min(int(k), c)
    z = shift_logits(p, t)
    q = _sigmoid(z)
    uncertain = np.argsort(np.abs(z), axis=1, kind="stable")[:, :k]  # [N, k]
    patterns = flip_patterns(k)
    flips = np.zeros((n, len(patterns), c), np.uint8)
    images, slots = np.arange(n)[:, None], np.arange(len(patterns))[None, :]
    for i in range(k):
        flips[images, slots, uncertain[:, i:i + 1]] = patterns[None, :, i]
    parts = [base[:, None, :] ^ flips]
    if table is not None and m > 0 and len(table.sets):
        parts.append(table.sets[likeliest_sets(q if shift else p, table, m)].astype(np.uint8))
    if nearest is not None:
        parts.append(table.sets[np.asarray(nearest)].astype(np.uint8))
    sets = np.concatenate(parts, axis=1)
    return Candidates(sets, _mark_repeats(sets))


def prior_scores(table: LabelSetTable, sets) -> np.ndarray:
    """The label-set prior ``dep(Y) = log(1 + count of Y in table)`` of
    candidate sets ``[N, K, C]``: ``[N, K]``, 0 for a set the table lacks.
    It needs no image and no method, so it serves every method (BCE too) and
    is the control of any claim that a dependency model decodes better."""
    sets = np.asarray(sets, np.uint8)
    counts = {row.tobytes(): int(c)
              for row, c in zip(np.packbits(table.sets.astype(np.uint8), axis=-1),
                                table.counts)}
    packed = np.packbits(sets, axis=-1)
    found = np.array([counts.get(row.tobytes(), 0)
                      for row in packed.reshape(-1, packed.shape[-1])], np.float64)
    return np.log1p(found).reshape(sets.shape[:2])


def decode(loglik, dep, valid, w: float) -> np.ndarray:
    """Index ``[N]`` of each image's candidate of highest
    ``loglik + w * dep`` among the valid ones (ties: the earlier slot);
    ``dep`` None or ``w = 0``: by likelihood alone."""
    score = np.asarray(loglik, np.float64)
    if dep is not None and w != 0:
        score = score + float(w) * np.asarray(dep, np.float64)
    return np.where(valid, score, -np.inf).argmax(axis=1)


def chosen_sets(candidates: Candidates, index) -> np.ndarray:
    """The sets ``[N, C]`` at ``index`` ``[N]``."""
    return candidates.sets[np.arange(len(index)), index]


def decoded_scores(p, sets) -> np.ndarray:
    """Scores whose 0.5-thresholded sets are ``sets`` and whose ranking puts
    each image's decoded labels first, both groups in the classifier's order:
    ``0.5 + p/2`` on decoded labels, ``p/2`` (kept below 0.5) elsewhere; the
    ranking metrics of a decoding (mAP, ranking loss) are computed on them."""
    half = 0.5 * np.asarray(p, np.float64)
    return np.where(np.asarray(sets) > 0, 0.5 + half, np.minimum(half, np.nextafter(0.5, 0)))


def evaluate_sets(y, p, sets) -> dict:
    """``metrics.compute_all`` of decoded ``sets`` (``decoded_scores`` at 0.5)."""
    return metrics.compute_all(y, decoded_scores(p, sets))


def choose_weight(y, p, candidates: Candidates, dep, grid: Sequence[float] = DEFAULT_GRID,
                  metric: str = "example_F1",
                  thresholds=None) -> Tuple[float, List[Dict[str, float]]]:
    """(the ``w`` of ``grid`` with the highest ``metric`` of the decoded sets
    on these images, ties towards the smaller ``w``; each grid point's
    ``{"w": w, metric: value}``). ``dep`` None: only ``w = 0`` is scored.

    Args:
      y: true multi-hot labels ``[N, C]`` (the selection split's).
      p: the classifier's probabilities ``[N, C]``.
      candidates: ``candidate_sets(p, ...)``.
      dep: the dependency scores ``[N, K]`` of those candidates, or None.
      grid: weights to try; 0 is added when missing.
      metric: a key of ``metrics.compute_all`` maximised (example-F1).
      thresholds: the likelihood's shift (``log_likelihood``); None: none.
    """
    if metric not in metrics.RESULT_KEYS:
        raise ValueError(f"metric must be a key of mltf.metrics.compute_all, got {metric!r}")
    weights = sorted({0.0, *(float(w) for w in grid)}) if dep is not None else [0.0]
    if weights[0] < 0:
        raise ValueError(f"the weights must be >= 0, got {weights[0]}")
    loglik = log_likelihood(p, candidates.sets, thresholds)
    figures = []
    for w in weights:
        sets = chosen_sets(candidates, decode(loglik, dep, candidates.valid, w))
        figures.append({"w": w, metric: evaluate_sets(y, p, sets)[metric]})
    best = max(range(len(weights)), key=lambda i: (figures[i][metric], -i))
    return weights[best], figures
