"""Compute-optimal proposals: how a budget is split between the scaling axes.

Given the loss law and the cost law, :func:`compute_optimal` finds the log scales that minimise
the predicted loss at a given cost, keeping the split between axes near the splits the runs tried.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from .power_laws import CostLaw, LossLaw

__all__ = ["compute_optimal", "split_within"]


def compute_optimal(cost: float, *, loss_law: LossLaw, cost_law: CostLaw,
                    observed: np.ndarray, held: np.ndarray | None = None) -> tuple[np.ndarray, str | None]:
    """Log scales minimising the loss law subject to the cost law meeting ``cost``, and a note
    when the split between axes had to be held at the edge of what the runs tried.

    With ``L = E + sum_k A_k exp(-alpha_k x_k)`` and ``log cost = c + sum_k g_k x_k`` the
    Lagrange condition ``alpha_k A_k exp(-alpha_k x_k) = lambda g_k`` gives each ``x_k`` in
    closed form, and the budget fixes ``log lambda`` (the problem is convex). Axes the cost
    does not grow with stay at their largest observed value; axes given in ``held`` (a `k`
    array of log scales, NaN for a free axis) stay at that value, e.g. an axis the runs barely
    varied, held where the cost law was fitted, so that the budget is spent as predicted.

    The split between two axes (e.g. tokens per parameter) may leave the range of splits the
    runs tried only as far as the budget leaves their costs: by at most a factor
    ``sqrt(cost / largest run's cost)`` beyond the range's ends (none for a budget within the
    runs' costs). Beyond the tried splits the law's terms are extrapolated in different
    directions, and a term the runs could not resolve (small, data-limited runs make any term
    in n_params look negligible) would otherwise send the whole budget to one axis: a tiny
    model on endless tokens. When the closed form leaves that range, the convex problem is
    solved with it as linear constraints, and the note says so.
    """
    if isinstance(cost, bool) or not isinstance(cost, numbers.Real) or not math.isfinite(cost) or cost <= 0:
        raise ValueError(f"cost={cost!r}: a budget must be a positive finite number")
    g = np.asarray(cost_law.slopes)
    fixed = np.zeros(len(g), dtype=bool) if held is None else ~np.isnan(np.asarray(held, dtype=float))
    driving = (g > 0.05) & ~fixed
    if not driving.any():
        raise ValueError(
            "the observed cost does not grow with any scaling axis, so a budget does not set a "
            "scale; pass the scaling values to propose() instead"
        )
    x = observed.max(axis=0).copy()
    if fixed.any():
        x[fixed] = np.asarray(held, dtype=float)[fixed]
    budget = math.log(float(cost)) - cost_law.intercept - float(g[~driving] @ x[~driving])
    gf, alpha = g[driving], np.asarray(loss_law.alpha)[driving]
    logA = np.log(np.asarray(loss_law.A)[driving])
    c = np.log(alpha) + logA - np.log(gf)
    log_lambda = (float((gf * c / alpha).sum()) - budget) / float((gf / alpha).sum())
    xf = (c - log_lambda) / alpha
    # The observed range of every pairwise log-ratio of the driving axes.
    obs = observed[:, driving]
    pairs = list(itertools.combinations(range(obs.shape[1]), 2))
    diff = np.stack([obs[:, i] - obs[:, j] for i, j in pairs], axis=1) if pairs else np.zeros((len(obs), 0))
    beyond = 0.5 * max(0.0, math.log(float(cost)) - float(cost_law(observed).max()))
    d_lo, d_hi = diff.min(axis=0) - beyond, diff.max(axis=0) + beyond
    split = np.array([xf[i] - xf[j] for i, j in pairs])
    note = None
    if pairs and (np.any(split < d_lo - 1e-9) or np.any(split > d_hi + 1e-9)):
        xf = split_within(obs, gf, logA, alpha, budget, pairs, d_lo, d_hi)
        names = [n for n, d in zip(cost_law.axes, driving) if d]
        edges = [f"{names[i]}/{names[j]} = {math.exp(xf[i] - xf[j]):.3g}" for i, j in pairs]
        note = ("the loss law would split this budget far outside the ratios between the scaling axes "
                f"that the runs tried; the split is held at {', '.join(edges)}, the runs' extreme ratio "
                "extended by the square root of how far the budget exceeds their costs. Runs at other "
                "ratios would show whether the law holds beyond it")
    x[driving] = xf
    return x, note


def split_within(obs: np.ndarray, g: np.ndarray, logA: np.ndarray, alpha: np.ndarray, budget: float,
                 pairs: list[tuple[int, int]], d_lo: np.ndarray, d_hi: np.ndarray) -> np.ndarray:
    """Minimise ``sum_k A_k exp(-alpha_k x_k)`` s.t. ``g . x = budget`` and every pairwise
    ``x_i - x_j`` within ``[d_lo, d_hi]`` (convex; SLSQP from the runs' mean split)."""
    from scipy.optimize import minimize

    mean = obs.mean(axis=0)
    x0 = mean + (budget - float(g @ mean)) / float(g.sum())  # the mean split, on budget
    scale = float(np.exp(logA - alpha * x0).sum()) or 1.0

    def f(x: np.ndarray) -> float:
        return float(np.exp(logA - alpha * x).sum()) / scale

    def df(x: np.ndarray) -> np.ndarray:
        return -alpha * np.exp(logA - alpha * x) / scale

    cons = [{"type": "eq", "fun": lambda x: np.array([g @ x - budget]), "jac": lambda x: g[None, :]}]
    for (i, j), lo, hi in zip(pairs, d_lo, d_hi):
        e = np.zeros(len(g))
        e[i], e[j] = 1.0, -1.0
        cons.append({"type": "ineq", "fun": lambda x, e=e, lo=lo: np.array([e @ x - lo]), "jac": lambda x, e=e: e[None, :]})
        cons.append({"type": "ineq", "fun": lambda x, e=e, hi=hi: np.array([hi - e @ x]), "jac": lambda x, e=e: -e[None, :]})
    res = minimize(f, x0, jac=df, constraints=cons, method="SLSQP", options={"maxiter": 200, "ftol": 1e-12})
    x = res.x
    feasible = np.all(np.isfinite(x)) and abs(float(g @ x) - budget) < 1e-6 and all(
        lo - 1e-6 <= x[i] - x[j] <= hi + 1e-6 for (i, j), lo, hi in zip(pairs, d_lo, d_hi))
    return x if feasible else x0  # x0 (the runs' mean split) always meets the constraints

# --- reporting ----------------------------------------------------------------------------
