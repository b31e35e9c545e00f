"""Per-scale optima and power laws through them (the Step Law authors' estimator).

Where the runs come in groups at the same scale (a sweep of lr x batch at each (N, D)), each
group's optimum is estimated on its own by :func:`local_optimum`, and the relations are weighted
least-squares power laws through those optima (:func:`fit_through_optima`).

The local fit allows what real loss valleys do: a different curvature on each side of the
optimum in every param (doubling lr costs more than halving it), an interaction between params,
and evidence from failed runs. Only the runs near the group's best are fitted as values; every
other run, and every failed one, is *censored*: it only says the loss there is at least the
window's top (a run that diverged at lr x says the optimum is below x, without a loss to fit).

Everything here works on numpy arrays in the units of the laws (natural-log scales, transformed
param values); no param names.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GroupOptimum", "OptimaRelation", "fit_through_optima", "group_optima", "local_optimum"]


@dataclass(frozen=True)
class GroupOptimum:
    """The optimum of one group of runs at one scale.

    Attributes:
        x: `k` natural-log scales of the group.
        t: `p` transformed values of the optimum.
        se: `p` their standard errors (from the local fit).
        n: runs in the group (failed ones included).
        best: the group's lowest observed loss.
        theta: the local fit's coefficients (see :func:`local_excess`).
        t_best: `p` values of the group's best run (the measured optimum, on the runs' grid).
    """

    x: np.ndarray
    t: np.ndarray
    se: np.ndarray
    n: int
    best: float
    theta: np.ndarray
    t_best: np.ndarray | None = None


def _n_local(p: int) -> int:
    return 1 + 3 * p + p * (p - 1) // 2


def local_excess(theta: np.ndarray, T: np.ndarray) -> np.ndarray:
    """`n` predicted log-loss excess over the optimum of a local fit at `n x p` values T.

    ``theta = (c, t*_1..p, log k+_1..p, log k-_1..p, rho_ij)``; the excess is
    ``sum_j k_j^sign(d_j) d_j^2 + sum_{i<j} rho_ij sqrt(kbar_i kbar_j) d_i d_j`` with
    ``d = T - t*`` and ``kbar`` the mean of each param's two curvatures.
    """
    p = T.shape[1]
    t, kp, km = theta[1:1 + p], np.exp(theta[1 + p:1 + 2 * p]), np.exp(theta[1 + 2 * p:1 + 3 * p])
    D = T - t[None, :]
    out = np.sum(np.where(D > 0, kp[None, :], km[None, :]) * D**2, axis=1)
    kbar = 0.5 * (kp + km)
    for r, (i, j) in zip(theta[1 + 3 * p:], itertools.combinations(range(p), 2)):
        out = out + 0.9 * math.tanh(r) * math.sqrt(kbar[i] * kbar[j]) * D[:, i] * D[:, j]
    return out


def local_optimum(T: np.ndarray, loss: np.ndarray, T_failed: np.ndarray, *, noise: float = 1e-3,
                  asymmetry: float = 1.0) -> GroupOptimum | None:
    """Fit the asymmetric local valley of one group; None when the group cannot pin it down
    (fewer runs than below, or a param all its runs share: its optimum there is unknown).

    Args:
        T: `n x p` transformed values of the successful runs.
        loss: `n` their losses.
        T_failed: `m x p` values of the failed runs (censored evidence).
        noise: the relative loss noise between neighbouring runs (the residual scale).
        asymmetry: the prior spread of the log ratio of the curvatures on the two sides (a
            weight of one run misfit by ``noise``); without it, a side with no run inside the
            window could fit as a wall at the edge of the window.

    The window of runs fitted as values holds the ``2 * n_coef + 2`` best runs (``n_coef`` local
    coefficients); the window's top is where the censoring starts.
    """
    from scipy.optimize import least_squares

    n, p = T.shape
    m = 2 * _n_local(p) + 2
    if n < m or np.any(np.ptp(T, axis=0) < 1e-9):  # too few runs, or a param the group never varied
        return None
    y = np.log(loss)
    order = np.argsort(y)
    inside = np.zeros(n, dtype=bool)
    inside[order[:m]] = True
    top = float(y[order[m - 1]])
    Tc = np.vstack([T[~inside], T_failed]) if len(T_failed) else T[~inside]
    allT = np.vstack([T, T_failed]) if len(T_failed) else T
    lo, hi = allT.min(axis=0), allT.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    w = np.exp(-(y[inside] - y[order[0]]) / max(top - y[order[0]], 1e-9))  # nearer the best weighs more

    def resid(th: np.ndarray) -> np.ndarray:
        fit = (th[0] + local_excess(th, T[inside]) - y[inside]) * w / noise
        cens = np.minimum(0.0, th[0] + local_excess(th, Tc) - top) / noise if len(Tc) else np.zeros(0)
        # A weak prior against a wall on one side: the two curvatures within ~e^asymmetry.
        skew = (th[1 + p:1 + 2 * p] - th[1 + 2 * p:1 + 3 * p]) / asymmetry
        return np.concatenate([fit, cens, skew])

    # Start at the curvature that puts the window's top at a fifth of the span from the optimum.
    k0 = math.log(max(top - y[order[0]], 1e-4) / (0.2 * span.mean()) ** 2)
    th0 = np.concatenate([[y[order[0]]], T[order[0]], np.full(2 * p, k0), np.zeros(p * (p - 1) // 2)])
    lb = np.concatenate([[-np.inf], lo, np.full(2 * p, -12.0), np.full(p * (p - 1) // 2, -3.0)])
    ub = np.concatenate([[np.inf], hi, np.full(2 * p, 8.0), np.full(p * (p - 1) // 2, 3.0)])
    th0 = np.clip(th0, lb + 1e-9, ub - 1e-9)
    res = least_squares(resid, th0, bounds=(lb, ub), method="trf")
    theta = res.x
    J = res.jac
    r = res.fun
    dof = max(len(r) - len(theta), 1)
    s2 = max(float(np.sum(r**2)) / dof, 1.0)
    try:
        cov = np.linalg.pinv(J.T @ J) * s2
        se = np.sqrt(np.maximum(np.diag(cov)[1:1 + p], 0.0))
    except np.linalg.LinAlgError:
        se = span.copy()
    se = np.minimum(se, span)  # never more uncertain than the group's own range
    return GroupOptimum(x=np.zeros(0), t=theta[1:1 + p].copy(), se=se, n=n + len(T_failed),
                        best=float(loss.min()), theta=theta, t_best=T[order[0]].copy())


def group_optima(x: np.ndarray, T: np.ndarray, loss: np.ndarray, x_failed: np.ndarray,
                 T_failed: np.ndarray) -> list[GroupOptimum]:
    """The local optimum of every scale that has enough runs (see :func:`local_optimum`)."""
    keys = np.round(x, 6)
    keys_f = np.round(x_failed, 6) if len(x_failed) else np.zeros((0, x.shape[1]))
    out = []
    for key in np.unique(keys, axis=0):
        rows = np.all(keys == key, axis=1)
        frows = np.all(keys_f == key, axis=1) if len(keys_f) else np.zeros(0, dtype=bool)
        opt = local_optimum(T[rows], loss[rows], T_failed[frows] if len(keys_f) else np.zeros((0, T.shape[1])))
        if opt is not None:
            out.append(GroupOptimum(x=x[rows].mean(axis=0), t=opt.t, se=opt.se, n=opt.n, best=opt.best,
                                    theta=opt.theta, t_best=opt.t_best))
    return out


@dataclass(frozen=True)
class OptimaRelation:
    """A power law through the per-scale optima of one param.

    Attributes:
        intercept: ``a`` of ``t* = a + sum_k slopes[k] x_k``.
        slopes: `k` slopes (0 along axes the cross-validation left out).
        covariance: `(k+1) x (k+1)` covariance of ``(a, *slopes)``.
        model_std: how far a held-out scale's optimum lies from the law fitted without it
            (leave-one-scale-out RMS error, of the fitted optima or of the best runs, whichever is
            larger), added to every prediction's uncertainty.
        axes_used: which axes carry a slope.
    """

    intercept: float
    slopes: np.ndarray
    covariance: np.ndarray
    model_std: float
    axes_used: tuple[bool, ...]


def _wls(X: np.ndarray, t: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares with a between-scale variance tau^2 estimated from the residuals;
    coefficients, their covariance and the weights."""
    Z = np.hstack([np.ones((len(t), 1)), X])
    tau2 = 0.0
    for _ in range(3):
        w = 1.0 / (se**2 + tau2)
        W = Z * w[:, None]
        A = np.linalg.pinv(Z.T @ W)
        coef = A @ (W.T @ t)
        resid = t - Z @ coef
        dof = max(len(t) - Z.shape[1], 1)
        tau2 = max(0.0, float(np.sum(resid**2)) / dof - float(np.mean(se**2)))
    scale = max(1.0, float(np.sum(w * resid**2)) / max(len(t) - Z.shape[1], 1))
    return coef, A * scale, w


def fit_through_optima(optima: list[GroupOptimum], j: int) -> OptimaRelation:
    """The power law of param ``j`` through the optima, with the axes it depends on chosen by
    leave-one-scale-out cross-validation (the constant, i.e. carry-over, is one candidate)."""
    X = np.stack([o.x for o in optima])
    t = np.array([o.t[j] for o in optima])
    se = np.array([o.se[j] for o in optima])
    t_best = np.array([o.t[j] if o.t_best is None else o.t_best[j] for o in optima])
    g, k = X.shape
    varies = X.max(axis=0) - X.min(axis=0) > 1e-6
    best = None
    for used in itertools.product([False, True], repeat=k):
        used_a = np.array(used)
        if (used_a & ~varies).any() or used_a.sum() + 2 > g:
            continue
        errs, errs_best = [], []
        for i in range(g):
            keep = np.arange(g) != i
            coef, _, _ = _wls(X[keep][:, used_a], t[keep], se[keep])
            pred = coef[0] + X[i, used_a] @ coef[1:]
            errs.append(t[i] - pred)
            errs_best.append(t_best[i] - pred)
        mse = float(np.mean(np.square(errs)))
        if best is None or mse < best[0] - 1e-12:
            best = (mse, used_a, float(np.mean(np.square(errs_best))))
    assert best is not None
    mse, used_a, mse_best = best
    coef, cov_u, _ = _wls(X[:, used_a], t, se)
    slopes = np.zeros(k)
    slopes[used_a] = coef[1:]
    idx = np.concatenate([[0], 1 + np.flatnonzero(used_a)])
    cov = np.zeros((k + 1, k + 1))
    cov[np.ix_(idx, idx)] = cov_u
    return OptimaRelation(intercept=float(coef[0]), slopes=slopes, covariance=cov, model_std=math.sqrt(max(mse, mse_best)),
                          axes_used=tuple(bool(u) for u in used_a))
