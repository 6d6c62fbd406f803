"""A time-varying Gaussian process: the model PB2 fits to a population's history (numpy only).

The kernel is the time-varying squared exponential of Bogunovic et al. 2016
("Time-Varying Gaussian Process Bandit Optimization"), as PB2 uses it
(Parker-Holder et al. 2020; Ray Tune's ``pb2_utils.TV_SquaredExp``)::

    k((t, x), (t', x')) = exp(-|x - x'|^2 / lengthscale) * (1 - epsilon) ** (|t - t'| / 2)

so an observation ``d`` segments old counts ``(1 - epsilon) ** (d / 2)`` as
much as a fresh one: what helped early in a run may not help later. The
variance is 1 (targets are standardised) plus a noise term. The three
hyper-parameters are chosen from a fixed grid by the log marginal
likelihood, so a fit is deterministic and needs no optimiser restarts.

Pure functions over arrays; ``fit`` returns a ``TimeVaryingGP`` that
predicts a mean and a standard deviation at new points.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

LENGTHSCALES = (0.05, 0.1, 0.2, 0.5, 1.0)
EPSILONS = (0.0, 0.1, 0.25, 0.5)  # Ray Tune caps epsilon at 0.5
NOISES = (0.01, 0.1, 0.3, 1.0)


def kernel(x1: np.ndarray, t1: np.ndarray, x2: np.ndarray, t2: np.ndarray, lengthscale: float, epsilon: float) -> np.ndarray:
    """The time-varying squared exponential between rows of ``x1`` (at times ``t1``) and of ``x2`` (at ``t2``).

    >>> x = np.array([[0.0], [1.0]]); t = np.array([0.0, 2.0])
    >>> np.round(kernel(x, t, x, t, lengthscale=1.0, epsilon=0.5), 3).tolist()
    [[1.0, 0.184], [0.184, 1.0]]
    """
    d2 = np.sum((x1[:, None, :] - x2[None, :, :]) ** 2, axis=-1)
    dt = np.abs(t1[:, None] - t2[None, :])
    return np.exp(-d2 / lengthscale) * (1.0 - epsilon) ** (dt / 2.0)


@dataclass(frozen=True)
class TimeVaryingGP:
    """A fitted GP over standardised targets: ``predict`` gives mean and standard deviation in the targets' own units."""

    x: np.ndarray
    t: np.ndarray
    lengthscale: float
    epsilon: float
    noise: float
    y_mean: float
    y_scale: float
    alpha: np.ndarray
    chol: np.ndarray
    log_likelihood: float

    def _cov(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return kernel(self.x, self.t, x, t, self.lengthscale, self.epsilon)

    def predict(self, x: np.ndarray, t: np.ndarray, pending: np.ndarray | None = None, pending_t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the target at rows ``x`` (times ``t``), in the targets' units.

        ``pending``: points already chosen in this round whose outcome is not
        known yet. They lower the standard deviation near them (a GP's
        variance does not depend on the targets), so a second choice in the
        same round looks elsewhere (Ray Tune's PB2 does the same).
        """
        ks = self._cov(x, t)
        mean = ks.T @ self.alpha
        chol, train_x, train_t = self.chol, self.x, self.t
        if pending is not None and len(pending):
            train_x, train_t = np.vstack([self.x, pending]), np.concatenate([self.t, pending_t])
            chol = _cholesky(kernel(train_x, train_t, train_x, train_t, self.lengthscale, self.epsilon) + self.noise * np.eye(len(train_t)))
            ks = kernel(train_x, train_t, x, t, self.lengthscale, self.epsilon)
        v = np.linalg.solve(chol, ks)
        var = np.clip(1.0 - np.sum(v * v, axis=0), 1e-12, None)
        return self.y_mean + self.y_scale * mean, self.y_scale * np.sqrt(var)


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    jitter = 0.0
    for _ in range(6):
        try:
            return np.linalg.cholesky(matrix + jitter * np.eye(len(matrix)))
        except np.linalg.LinAlgError:
            jitter = 1e-8 if jitter == 0.0 else jitter * 10
    return np.linalg.cholesky(matrix + 1e-2 * np.eye(len(matrix)))


def standardise(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Targets as z-scores clipped to [-2, 2] (Ray Tune's PB2), with the mean and scale to undo it.

    >>> z, m, s = standardise(np.array([0.0, 0.5, 1.0]))
    >>> np.round(z, 3).tolist(), m
    ([-1.225, 0.0, 1.225], 0.5)
    """
    mean, scale = float(np.mean(y)), float(np.std(y)) + 1e-8
    return np.clip((y - mean) / scale, -2.0, 2.0), mean, scale


def fit(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> TimeVaryingGP:
    """The GP whose (lengthscale, epsilon, noise) of the grid gives the highest log marginal likelihood.

    Grid order breaks ties, so the same data always gives the same model.

    >>> x = np.array([[0.0], [0.5], [1.0]]); t = np.zeros(3)
    >>> gp = fit(x, t, np.array([0.0, 0.5, 1.0]))
    >>> mean, std = gp.predict(np.array([[1.0]]), np.zeros(1))
    >>> bool(mean[0] > 0.5), bool(std[0] < 0.5)
    (True, True)
    """
    if len(y) == 0:
        raise ValueError("a GP needs at least one observation")
    z, y_mean, y_scale = standardise(np.asarray(y, dtype=float))
    best: TimeVaryingGP | None = None
    for lengthscale, epsilon, noise in itertools.product(LENGTHSCALES, EPSILONS, NOISES):
        chol = _cholesky(kernel(x, t, x, t, lengthscale, epsilon) + noise * np.eye(len(z)))
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
        ll = float(-0.5 * z @ alpha - np.sum(np.log(np.diag(chol))) - 0.5 * len(z) * math.log(2 * math.pi))
        if best is None or ll > best.log_likelihood + 1e-9:
            best = TimeVaryingGP(x, t, lengthscale, epsilon, noise, y_mean, y_scale, alpha, chol, ll)
    assert best is not None
    return best
