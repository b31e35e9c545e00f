"""Which run teaches the scaling law most about its proposal at a target scale.

The law's response surface (:mod:`~carbs_like.scaling.surface`) is a parametric model of the log
loss, so the value of a run that has not been made yet can be read off it, as in optimal
experimental design (and as "Spend Less, Fit Better", arXiv 2604.22753, does for scaling laws):
with ``J`` the Jacobian of the fitted log loss by the coefficients at the runs (weighted as the
fit weights them), the coefficients' covariance is ``C = s^2 (J'J + P'P)^-1`` (``P`` the fit's
priors, ``s`` the residual scale). The proposal at the target scale is ``t*(s_T) = a + B x_T``,
linear in the coefficients (``G``), and its expected loss excess there is ``tr(H G C G')``, ``H``
the bowl's curvature. One more run at ``x`` with Jacobian row ``j`` and weight ``w`` lowers it by

    gain(x) = j' C G' H G C j / (s^2 / w^2 + j' C j)        (Sherman-Morrison)

in log-loss units: the expected reduction of the regret of the proposal at the target. A run
near the optimum at its own scale says little about where the optimum is (the bowl's gradient
in ``a`` vanishes there); runs on both sides of it, at scales with leverage on the target, say
the most. Pending runs count as information already (it does not depend on their losses).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from ..space import ChoiceParam, SearchSpace
from ..trial import ObservedData
from .surface import Runs, SurfaceFit, fit_surface, information_rows, n_coefficients, prior_information

__all__ = ["encode", "fit_x", "missing_scales", "target_gain"]


def encode(space: SearchSpace, X: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n x d` search coordinates in the units of the laws: natural-log scales, transformed
    relation params (every numeric non-scaling param) and choice indices."""
    relation_params = [p.name for p in space.params if not isinstance(p, ChoiceParam) and p.name not in space.scaling]
    choice_params = [p.name for p in space.params if isinstance(p, ChoiceParam)]
    T = np.stack([space.transformed(X, n) for n in relation_params], axis=-1) \
        if relation_params else np.zeros((X.shape[0], 0))
    C = np.stack([space.choice_index(X, n) for n in choice_params], axis=-1) \
        if choice_params else np.zeros((X.shape[0], 0), dtype=int)
    return space.log_scales(X), T, C


def missing_scales(space: SearchSpace, data: ObservedData) -> int:
    """How many more distinct scales (of successful runs) the law needs before it can be fitted."""
    ok = data.ok & torch.isfinite(data.loss)
    x = space.log_scales(data.X[ok])
    return max(0, 2 * len(space.scaling) + 2 - len(np.unique(np.round(x, 9), axis=0)))


def target_gain(space: SearchSpace, data: ObservedData, X_pending: Tensor, target: Mapping[int, float], *,
                seed: int = 0) -> Callable[[Tensor], Tensor] | None:
    """A function from `m x d` candidates to the expected reduction of the log-loss regret of
    the law's proposal at ``target`` (``{column: search coordinate}`` of the scaling axes) from
    one more run at each (module docstring); None while the runs are too few for the surface."""
    ok = data.ok & torch.isfinite(data.loss)
    n_choices = [len(p.choices) for p in space.params if isinstance(p, ChoiceParam)]
    k = len(space.scaling)
    x, T, C = encode(space, data.X[ok])
    # As many runs and scales as the law itself asks for (ScalingLaw.fit).
    if (T.shape[1] == 0 or x.shape[0] < max(8, int(1.5 * n_coefficients(k, T.shape[1], n_choices)) + 2)
            or missing_scales(space, data) > 0):
        return None
    runs = Runs(x=x, T=T, choice=C, loss=data.loss[ok].numpy(), log_cost=torch.log(data.cost[ok]).numpy())
    with warnings.catch_warnings():  # narrow axes and the like: the law reports them, not each ask
        warnings.simplefilter("ignore")
        try:
            fit = fit_surface(runs, axes=space.scaling, n_choices=n_choices, n_bootstrap=0, seed=seed)
        except (ValueError, np.linalg.LinAlgError):  # a degenerate fit: the GP's criterion instead
            return None
    bowl, theta = fit.surface, fit.theta
    J, w, pred = information_rows(bowl, theta, fit_x(fit, runs.x), runs.T, runs.choice)
    resid = (pred - np.log(runs.loss)) * w
    J = J * w[:, None]
    if len(X_pending):
        xp, Tp, Cp = encode(space, X_pending)
        Jp, wp, _ = information_rows(bowl, theta, fit_x(fit, xp), Tp, Cp)
        J = np.vstack([J, Jp * wp[:, None]])
    s2 = max(float(np.mean(resid**2)), 1e-8)
    cov = s2 * np.linalg.pinv(J.T @ J + prior_information(bowl, theta.size))
    # G: d t*(x_T) / d theta in the bowl's standardised units (rows: params; a, then B row-major).
    row = data.X[:1].clone()
    for column, u in target.items():
        row[0, column] = u
    x_t = fit_x(fit, space.log_scales(row))[0]
    xs_t = (x_t - bowl.x_mean) / bowl.x_std
    G = np.zeros((bowl.p, theta.size))
    a0 = bowl.sizes[0]
    for j in range(bowl.p):
        G[j, a0 + j] = 1.0
        G[j, a0 + bowl.p + j * k: a0 + bowl.p + (j + 1) * k] = xs_t
    H = bowl.H(bowl.split(theta)[3])
    M = cov @ G.T @ H @ G @ cov

    def gain(X: Tensor) -> Tensor:
        x, T, C = encode(space, X)
        Jx, wx, _ = information_rows(bowl, theta, fit_x(fit, x), T, C)
        num = np.einsum("mi,ij,mj->m", Jx, M, Jx)
        den = s2 / np.maximum(wx, 1e-6) ** 2 + np.einsum("mi,ij,mj->m", Jx, cov, Jx)
        return torch.as_tensor(num / den, dtype=X.dtype)

    return gain


def fit_x(fit: SurfaceFit, x: np.ndarray) -> np.ndarray:
    """Log scales as the fit sees them: the axes it held constant (too narrow) at their mean."""
    flat = np.asarray(fit.flat, dtype=bool)
    if not flat.any():
        return x
    x = x.copy()
    x[:, flat] = fit.surface.x_mean[flat]
    return x
