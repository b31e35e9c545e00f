"""Target-aware acquisition: runs that teach the most about the proposal at a target scale, per cost.

A user who will train one model at a target size (``TunerSettings.target``, e.g. 7e9 params and
1.4e11 tokens) needs the runs to pin down the best config *there*, not the best front here. The
scaling law gets there in two steps (:mod:`carbs_like.scaling`): the optimum at each observed
scale, then a regression of those optima on the log scaling axes, extrapolated to the target. On
a share of the asks (``target_share``) the tuner asks for the run that most reduces the
uncertainty of both steps, per unit of its predicted cost:

    score(x) = log IVR(x) + log VR(s(x)) - log cost(x) + log P(success | x)

* ``IVR(x) = sum_j Cov(f(z_j), f(x))^2 / (Var f(x) + noise)``: the integrated variance reduction
  (Cohn 1994) of the loss GP at the predicted near-optimal configs ``z_j``, placed at ``x``'s own
  scale: how much ``x`` teaches about the optimum at its scale, on either side of it;
* ``VR(s) = h(s_T, s)^2 / (1 + h(s, s))``, with ``h(a, b) = [1, a]^T (Phi^T Phi)^-1 [1, b]`` over
  the scales already observed: how much one more optimum at scale ``s`` reduces the variance of
  the regression's prediction at the target scale ``s_T`` (Sherman-Morrison). It grows towards
  the largest scales and away from the scales already covered.

Near-optimal runs at the largest affordable scales, spread over scales and over both sides of
each optimum, are what this selects; pending trials are conditioned on (kriging believer), so
parallel asks spread out.

That is the GP's view. Once the runs are enough for the scaling law's response surface, the
default (``TunerSettings.target_design="law"``) asks the law itself instead:
:func:`carbs_like.scaling.design.target_gain` is the expected reduction of the regret of the
law's proposal at the target from one more run, and the score becomes

    score(x) = log gain(x) - log cost(x) + log P(success | x).

On the real Step Law pools (``benchmarks/target_pool.py``, numbers in the README), at half the
asks, the two criteria are within the seeds' spread of each other; with every ask on the target,
the law's is the best of the searches measured there, most of all where the budget is tight. While the law lacks the distinct scales it needs to be fitted at all, only candidates at
new scales compete (``new_scale``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

import torch
from torch import Tensor

from .acquisition import Geometry, Suggestion, best_fresh, candidates, pareto_mask
from .surrogate import Surrogate
from .trial import ObservedData

__all__ = ["N_TARGET_POINTS", "cost_target", "regression_variance_reduction", "target_points", "target_suggest"]

# Target points: the best N_TARGET_POINTS of N_TARGET_SAMPLES Sobol points at the target scale,
# by the loss GP's mean: enough to cover the optimum's neighbourhood on each side in a few dims.
N_TARGET_POINTS = 16
N_TARGET_SAMPLES = 512


def cost_target(surrogate: Surrogate, data: ObservedData, scaling_columns: list[int], cost: float) -> dict[int, float]:
    """The target scale for a compute budget: the largest observed scaling coordinates, all moved
    by the same step, until the cost model predicts ``cost`` at the best observed config there."""
    ok = data.X[data.ok]
    best = ok[int(torch.argmin(data.loss[data.ok]))].clone()
    top = {c: float(ok[:, c].max()) for c in scaling_columns}

    def log_cost(step: float) -> float:
        x = best.clone()
        for c, u in top.items():
            x[c] = u + step
        return float(surrogate.log_cost(x.unsqueeze(0)))

    lo, hi = -1.0, 1.0
    while log_cost(hi) < math.log(cost) and hi < 64:
        lo, hi = hi, 2 * hi
    for _ in range(40):  # bisection on the step (the cost model grows along every scaling axis)
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if log_cost(mid) < math.log(cost) else (lo, mid)
    return {c: u + 0.5 * (lo + hi) for c, u in top.items()}


def target_points(surrogate: Surrogate, target: Mapping[int, float], *, geometry: Geometry,
                  generator: torch.Generator) -> Tensor:
    """`N_TARGET_POINTS x d` near-optimal points at the target's scaling coordinates."""
    d = geometry.limits.shape[-1]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    Z = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(N_TARGET_SAMPLES, dtype=torch.float64)
    for column, u in target.items():
        Z[:, column] = u
    Z = geometry.round(Z)
    mean, _ = surrogate.loss(Z)
    return Z[torch.topk(-mean, min(N_TARGET_POINTS, Z.shape[0])).indices]


def regression_variance_reduction(S_obs: Tensor, S: Tensor, s_target: Tensor) -> Tensor:
    """``VR(s)`` of the module docstring for `m x k` scales ``S``, given the observed scales
    ``S_obs`` (`n x k`) and the target scale (`k`), under a unit Gaussian prior on the
    regression coefficients (search units: coefficients of order one), so it stays defined with few scales."""
    def phi(A: Tensor) -> Tensor:  # [1, s, s s^T]: a law that may bend hedges the extrapolation
        quad = (A.unsqueeze(-1) * A.unsqueeze(-2)).flatten(1)[:, _upper(A.shape[1])]
        return torch.cat([torch.ones(A.shape[0], 1, dtype=A.dtype), A, quad], 1)

    P = phi(S_obs)
    inv = torch.linalg.inv(P.T @ P + torch.eye(P.shape[1], dtype=P.dtype))
    F, f_t = phi(S), phi(s_target.unsqueeze(0))[0]
    h_t = F @ (inv @ f_t)
    h = ((F @ inv) * F).sum(-1)
    return h_t**2 / (1.0 + h)


def _upper(k: int) -> list[int]:
    return [i * k + j for i in range(k) for j in range(i, k)]


def target_suggest(
    surrogate: Surrogate,
    data: ObservedData,
    X_pending: Tensor,
    *,
    target: Mapping[int, float],
    geometry: Geometry,
    exclude: Collection[tuple[float, ...]],
    generator: torch.Generator,
    n_candidates: int = 2000,
    sobol_fraction: float = 0.2,
    max_log_cost: float | None = None,
    pool: Tensor | None = None,
    gain: Callable[[Tensor], Tensor] | None = None,
    new_scale: bool = False,
) -> Suggestion:
    """The candidate with the best score of the module docstring; from ``pool`` when given, else
    from raw samples over the box and near the front. With ``gain`` (the scaling law's expected
    reduction of the target proposal's regret per run, :func:`carbs_like.scaling.design.target_gain`),
    the score is ``log gain(x) - log cost(x) + log P(success | x)`` instead. With ``new_scale``
    (the law lacks distinct scales to be fitted at all), only candidates at a scale no run has
    yet compete, where there are any (in pool mode, scales repeat)."""
    model = surrogate.with_pending(X_pending)
    if pool is not None:
        X = pool
    else:
        front = data.X[data.ok][pareto_mask(data.loss[data.ok], data.cost[data.ok])]
        X = candidates(front if len(front) else data.X, n_candidates, geometry=geometry, generator=generator,
                       sobol_fraction=sobol_fraction)
        X = geometry.round(X.clamp(geometry.limits[0], geometry.limits[1]))
    log_cost = surrogate.log_cost(X)
    if gain is not None:
        value = gain(X)
    else:
        value = _ivr_vr(model, surrogate, data, X_pending, X, target, geometry=geometry, generator=generator)
    score = torch.log(value.clamp_min(1e-300)) - log_cost + torch.log(surrogate.p_success(X).clamp_min(1e-12))
    if max_log_cost is not None:
        score = torch.where(log_cost <= max_log_cost, score, torch.full_like(score, -math.inf))
    if new_scale:
        columns = list(target)
        seen = torch.cat([data.X[data.ok], X_pending])[:, columns]
        fresh = torch.cdist(X[:, columns], seen).min(dim=1).values > 1e-6 if len(seen) else torch.ones(len(X), dtype=torch.bool)
        if bool((fresh & torch.isfinite(score)).any()):
            score = torch.where(fresh, score, torch.full_like(score, -math.inf))
    i = best_fresh(X, score, exclude=exclude, geometry=geometry)
    x = X[i : i + 1]
    mean, _ = surrogate.loss(x)
    value = float(score[i])
    return Suggestion(
        x=x[0],
        predicted_loss=float(surrogate.warp.inverse(mean)) if surrogate.warp is not None else None,
        predicted_cost=float(torch.exp(surrogate.log_cost(x))) if surrogate.cost_model is not None else None,
        p_success=float(surrogate.p_success(x)),
        log_score=value if math.isfinite(value) else None,
        n_candidates=X.shape[0],
        kind="target_law" if gain is not None else "target",
    )


def _ivr_vr(model: Surrogate, surrogate: Surrogate, data: ObservedData, X_pending: Tensor, X: Tensor,
            target: Mapping[int, float], *, geometry: Geometry, generator: torch.Generator) -> Tensor:
    """``IVR(x) VR(s(x))`` of the module docstring, for `m x d` candidates ``X``."""
    columns = list(target)
    Z = target_points(model, target, geometry=geometry, generator=generator)  # |Z| x d
    Zx = Z.unsqueeze(1).repeat(1, X.shape[0], 1)  # the near-optimal configs at each candidate's scale
    Zx[..., columns] = X[:, columns].unsqueeze(0)
    _, std = model.loss(X)
    cov = model.loss_covariance(Zx, X.unsqueeze(0).expand_as(Zx))  # |Z| x m
    ivr = (cov**2).sum(0) / (std**2 + surrogate.loss_noise)
    S_obs = torch.cat([data.X[data.ok], X_pending])[:, columns]
    vr = regression_variance_reduction(S_obs, X[:, columns], torch.tensor([target[c] for c in columns],
                                                                           dtype=X.dtype))
    return ivr * vr
