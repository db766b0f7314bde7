"""The evidence model of ``dependency_sim.py`` and its oracles, in numpy.

Generative model (real label sets, synthetic evidence). For image i and label
j with y_ij in {0, 1}:

    x_ij = s_ij * (2 y_ij - 1) + sigma * e_ij,     e_ij ~ N(0, 1)
    s_ij = mu_j          with probability 1 - q    (a visible label)
         = r * mu_j      with probability q        (a weak one: faint, occluded)
    mu_j ~ Uniform(mu_low, mu_high), drawn once per label

with e, the weak draws and mu independent of each other and of Y. Given the
label set the C evidence values are independent, so the only dependency in
the data is the one between the labels themselves; with r = 0 a weak label
carries no evidence and only the labels it co-occurs with can recover it.
The likelihood is a two-component mixture,
``p(x | y) = (1 - q) N(x; (2y - 1) mu, sigma^2) + q N(x; (2y - 1) r mu, sigma^2)``.

Three oracles know the model (``oracle_scores``):

* ``independent``: ``p(y_j | x_j)`` with the training marginal ``pi_j`` as
  prior, each label from its own evidence alone;
* ``set_marginals``: ``p(y_j | x)`` under the set posterior
  ``p(Y | x) ~ p(Y) prod_j p(x_j | y_j)``, ``p(Y)`` the empirical training
  distribution over the distinct training sets: the best per-label scores,
  which a BCE model on the whole vector x can approach (it sees every
  label's evidence), thresholded at 0.5;
* ``set_map``: the set of largest posterior (exact: an argmax over the
  distinct training sets), the best subset accuracy a set-level decoder can
  reach; its mAP is that of ``set_marginals``.
"""

from typing import Dict, Tuple

import numpy as np


def label_strengths(num_labels: int, rng: np.random.Generator, mu_low: float = 1.0,
                    mu_high: float = 3.0) -> np.ndarray:
    """mu_j ~ Uniform(mu_low, mu_high), [C]."""
    return rng.uniform(mu_low, mu_high, num_labels)


def simulate(labels, mu, sigma: float, weak_fraction: float, weak_scale: float,
             rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(evidence x [N, C] float32, weak mask [N, C] bool) of multi-hot ``labels``."""
    y = (np.asarray(labels) > 0).astype(np.float64)
    weak = rng.random(y.shape) < weak_fraction
    strength = np.where(weak, weak_scale, 1.0) * np.asarray(mu)[None, :]
    x = strength * (2.0 * y - 1.0) + sigma * rng.standard_normal(y.shape)
    return x.astype(np.float32), weak


def _log_normal(x, mean, sigma):
    return -0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))


def log_likelihood_ratio(x, mu, sigma: float, weak_fraction: float,
                         weak_scale: float) -> np.ndarray:
    """log p(x_ij | y_ij = 1) - log p(x_ij | y_ij = 0), [N, C]."""
    x = np.asarray(x, np.float64)
    mu = np.asarray(mu, np.float64)[None, :]

    def log_p(sign):
        parts = []
        for share, scale in ((1.0 - weak_fraction, 1.0), (weak_fraction, weak_scale)):
            if share > 0:
                parts.append(np.log(share) + _log_normal(x, sign * scale * mu, sigma))
        return np.logaddexp.reduce(parts, axis=0)

    return log_p(1.0) - log_p(-1.0)


def set_prior(train_labels) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct training sets [D, C] uint8, log p(Y) [D]), the empirical prior."""
    sets, counts = np.unique((np.asarray(train_labels) > 0).astype(np.uint8), axis=0,
                             return_counts=True)
    return sets, np.log(counts / counts.sum())


def set_posterior(llr, sets, log_prior, chunk: int = 512) -> Tuple[np.ndarray, np.ndarray]:
    """(MAP set [N, C] uint8, marginals p(y_j = 1 | x) [N, C]) under
    ``p(Y | x) ~ p(Y) prod_j p(x_j | y_j)`` over ``sets``: the factor
    ``prod_j p(x_j | 0)`` is common to every Y, so the log posterior is
    ``log p(Y) + Y . llr`` up to a constant."""
    sets_f = np.asarray(sets, np.float64)
    n = llr.shape[0]
    best = np.empty((n, sets_f.shape[1]), np.uint8)
    marginals = np.empty((n, sets_f.shape[1]))
    for start in range(0, n, chunk):
        score = log_prior[None, :] + llr[start:start + chunk] @ sets_f.T
        best[start:start + chunk] = sets[np.argmax(score, axis=1)]
        weight = np.exp(score - score.max(axis=1, keepdims=True))
        marginals[start:start + chunk] = (weight @ sets_f) / weight.sum(axis=1, keepdims=True)
    return best, marginals


def oracle_scores(x, train_labels, mu, sigma: float, weak_fraction: float,
                  weak_scale: float) -> Dict[str, np.ndarray]:
    """The three oracles' scores [N, C] (``set_map`` as 0/1)."""
    llr = log_likelihood_ratio(x, mu, sigma, weak_fraction, weak_scale)
    pi = np.clip((np.asarray(train_labels) > 0).mean(axis=0), 1e-6, 1 - 1e-6)
    independent = 1.0 / (1.0 + np.exp(-(llr + np.log(pi / (1 - pi)))[...]))
    sets, log_prior = set_prior(train_labels)
    best, marginals = set_posterior(llr, sets, log_prior)
    return {"independent": independent, "set_marginals": marginals,
            "set_map": best.astype(np.float64)}


def mixing_matrix(num_labels: int, dim: int, seed: int) -> np.ndarray:
    """A fixed Gaussian [C, dim] matrix, entries N(0, 1 / C): the features are
    ``x @ M`` when the records should not hold one value per label."""
    return np.random.default_rng(seed).normal(0.0, 1.0 / np.sqrt(num_labels),
                                              (num_labels, dim)).astype(np.float32)
