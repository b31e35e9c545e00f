"""Power laws in the scaling axes: the loss law (Chinchilla form) and the cost law.

* :class:`LossLaw` ``L = E + sum_k A_k / s_k^alpha_k`` (Hoffmann et al. 2022, arXiv 2203.15556),
  fitted by :func:`fit_loss_law` with a Huber loss on log L (Besiroglu et al. 2024, arXiv 2404.10102);
* :class:`CostLaw` ``log cost = c + sum_k g_k log s_k`` (cost = 6 N D FLOPs has g = (1, 1)),
  fitted by :func:`fit_cost_law`.

Every function here works on numpy arrays of natural-log scales (`n x k`); no param names beyond
the axes' labels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CostLaw", "LossLaw", "design", "fit_cost_law", "fit_loss_law", "loss_law_value"]


@dataclass(frozen=True)
class LossLaw:
    """The best loss against scale: ``L = E + sum_k A_k / s_k^alpha_k`` (Chinchilla form).

    Attributes:
        axes: the scaling axes.
        E: the irreducible loss.
        A: one coefficient per axis.
        alpha: one exponent per axis.
        samples: `b x (1 + 2k)` bootstrap refits ``(E, log A_1.., alpha_1..)`` for the band.
        n_points: points the law was fitted to.
        model_std: model error of log L (e.g. the spread of the measured best losses at the
            observed scales around the law), added to the band in quadrature.
        held_std, held_distance, center: the law's RMS error in log L at held-out scales, which
            lay ``held_distance`` (natural-log units) from the centre of the runs it was refitted
            on; beyond that distance from ``center`` (the runs' mean log scales) the model error
            grows in proportion to the distance, as the error of a fitted exponent does. The
            band's model error at ``x`` is ``max(model_std, held_std * |x - center| / held_distance)``.
    """

    axes: tuple[str, ...]
    E: float
    A: tuple[float, ...]
    alpha: tuple[float, ...]
    samples: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    n_points: int = 0
    model_std: float = 0.0
    held_std: float = 0.0
    held_distance: float = 0.0
    center: tuple[float, ...] = ()

    def model_error(self, log_scales: np.ndarray) -> np.ndarray:
        """The model error of log L at `m x k` log scales; an `m` array (see the attributes)."""
        x = np.atleast_2d(log_scales)
        std = np.full(x.shape[0], self.model_std)
        if self.held_std > 0 and self.held_distance > 0 and len(self.center) == x.shape[1]:
            d = np.linalg.norm(x - np.asarray(self.center)[None, :], axis=1)
            std = np.maximum(std, self.held_std * d / self.held_distance)
        return std

    def __call__(self, log_scales: np.ndarray) -> np.ndarray:
        """Predicted loss at `m x k` log scales (natural log); an `m` array."""
        theta = np.array([self.E, *np.log(self.A), *self.alpha])
        return loss_law_value(theta, np.atleast_2d(log_scales))

    def band(self, log_scales: np.ndarray, *, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the ``level`` band at `m x k` log scales (bootstrap refits)."""
        x = np.atleast_2d(log_scales)
        mid = self(x)
        from statistics import NormalDist

        if len(self.samples) >= 2:
            values = np.stack([loss_law_value(np.asarray(s), x) for s in self.samples])
            q = (1 - level) / 2
            lo, hi = np.quantile(values, [q, 1 - q], axis=0)
            lo, hi = np.minimum(lo, mid), np.maximum(hi, mid)
        else:
            lo, hi = mid, mid
        m = NormalDist().inv_cdf(0.5 + level / 2) * self.model_error(x)
        if np.any(m > 0):  # widen each side in log L, in quadrature with the bootstrap's spread
            lo = mid * np.exp(-np.sqrt(np.log(mid / lo) ** 2 + m**2))
            hi = mid * np.exp(np.sqrt(np.log(hi / mid) ** 2 + m**2))
        return lo, hi


@dataclass(frozen=True)
class CostLaw:
    """``log cost = intercept + sum_k slopes[k] log s_k``, fitted to the successful observations.

    Attributes:
        axes: the scaling axes.
        intercept: ``c``.
        slopes: ``g_k`` (cost = 6 N D gives 1 for each).
        residual_std: RMS residual in log cost (what the other params add).
    """

    axes: tuple[str, ...]
    intercept: float
    slopes: tuple[float, ...]
    residual_std: float

    def __call__(self, log_scales: np.ndarray) -> np.ndarray:
        """Predicted log cost at `m x k` log scales; an `m` array."""
        return design(np.atleast_2d(log_scales)) @ np.array([self.intercept, *self.slopes])


def design(log_scales: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((log_scales.shape[0], 1)), log_scales])


def loss_law_value(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    k = x.shape[1]
    E, logA, alpha = theta[0], theta[1:1 + k], theta[1 + k:]
    return E + np.exp(logA[None, :] - alpha[None, :] * x).sum(axis=1)


def fit_loss_law(log_scales: np.ndarray, loss: np.ndarray, *, axes: Sequence[str],
                 n_bootstrap: int = 64, seed: int = 0, robust: bool = True) -> LossLaw:
    """Fit ``L = E + sum_k A_k / s_k^alpha_k`` to losses at `n x k` log scales (natural log).

    Least squares on log L (Huber with delta 1e-3 by default, as in Besiroglu et al. 2024,
    arXiv 2404.10102) from a grid of
    starting points, with ``0 <= E < min(L)`` and ``0.02 <= alpha_k <= 2``; the band comes from
    ``n_bootstrap`` refits on resampled points.

    Args:
        log_scales: `n x k` natural logs of the scaling values.
        loss: `n` positive losses.
        axes: the names of the k axes.
        n_bootstrap: refits for the band (0 for none).
        seed: seeds the bootstrap's own generator.
        robust: Huber loss on the log residuals (outliers barely pull the fit).

    Raises:
        ValueError: fewer than ``2k + 2`` points, or non-positive losses.
    """
    from scipy.optimize import least_squares

    x = np.atleast_2d(np.asarray(log_scales, dtype=float))
    y = np.asarray(loss, dtype=float)
    n, k = x.shape
    if n < 2 * k + 2:
        raise ValueError(f"the loss law L = E + sum A_k/s_k^alpha_k needs at least {2 * k + 2} points, got {n}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("losses for the loss law must be positive and finite")
    ly = np.log(y)
    lo = np.array([0.0, *[-50.0] * k, *[0.02] * k])
    hi = np.array([float(y.min()) * (1 - 1e-9), *[80.0] * k, *[2.0] * k])
    kwargs = dict(loss="huber", f_scale=1e-3) if robust else {}

    def resid(theta: np.ndarray, xs: np.ndarray, lys: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(loss_law_value(theta, xs), 1e-300)) - lys

    def jac(theta: np.ndarray, xs: np.ndarray, lys: np.ndarray) -> np.ndarray:
        terms = np.exp(theta[1:1 + k][None, :] - theta[1 + k:][None, :] * xs)
        base = np.maximum(theta[0] + terms.sum(axis=1), 1e-300)[:, None]
        return np.hstack([1.0 / base, terms / base, -xs * terms / base])

    def solve(start: np.ndarray, xs: np.ndarray, lys: np.ndarray):
        start = np.clip(start, lo + 1e-9, hi - 1e-9)
        return least_squares(resid, start, jac=jac, bounds=(lo, hi), args=(xs, lys), method="trf",
                             max_nfev=300, **kwargs)

    best = None
    xm = x.mean(axis=0)
    for e_frac, a0 in itertools.product((0.0, 0.5, 0.9), (0.1, 0.3, 0.6)):
        E0 = e_frac * float(y.min())
        share = max(float(y.mean()) - E0, 1e-6) / k
        start = np.array([E0, *(math.log(share) + a0 * xm), *[a0] * k])
        res = solve(start, x, ly)
        if best is None or res.cost < best.cost:
            best = res
    theta = best.x
    samples = []
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        for _ in range(n_bootstrap):
            i = rng.integers(0, n, n)
            samples.append(tuple(float(v) for v in solve(theta, x[i], ly[i]).x))
    return LossLaw(axes=tuple(axes), E=float(theta[0]), A=tuple(float(v) for v in np.exp(theta[1:1 + k])),
                   alpha=tuple(float(v) for v in theta[1 + k:]), samples=tuple(samples), n_points=n)


def fit_cost_law(log_scales: np.ndarray, log_cost: np.ndarray, *, axes: Sequence[str]) -> CostLaw:
    """Least-squares fit of ``log cost = c + sum_k g_k log s_k`` (`n x k` and `n` arrays)."""
    Z = design(np.atleast_2d(log_scales))
    coef, *_ = np.linalg.lstsq(Z, log_cost, rcond=None)
    r = log_cost - Z @ coef
    return CostLaw(axes=tuple(axes), intercept=float(coef[0]), slopes=tuple(float(v) for v in coef[1:]),
                   residual_std=float(np.sqrt(np.mean(r**2))))
