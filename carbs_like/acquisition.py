"""The front, candidates around it, and the cost-aware score: the one acquisition path.

Following CARBS (Fetterman et al. 2023, arXiv 2306.08055), candidates are drawn around points of
the current Pareto front of loss against cost, plus a space-filling Sobol share of the whole
nominal box (so the entire range keeps being explored). Each candidate ``x`` is scored by

    log EI(x | front loss at cost <= predicted cost(x)) + log P(success | x)

i.e. its expected improvement over what the front already achieves at its own predicted cost,
times its probability of not failing. Improvements at different costs are not comparable (a loss
unit is worth more near the best loss), so an argmax over all costs drifts to one end of the
front. Each ask therefore draws a *cost band* log-uniformly over the predicted cost range of the
box (capped by ``max_suggestion_cost``) and maximises the score within it: over many asks the
front is extended and improved at every cost, and every scale gets near-optimal runs, which the
scaling laws need. The best candidates are refined with a second, narrower
round of perturbations, and the winner is chosen among the top few by sampling in proportion to
the score, which keeps some exploration (argmax-only search hugs the boundaries of the box).

Everything here works on float64 search-space tensors; no param names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .surrogate import ObservedData, Surrogate

__all__ = [
    "Geometry",
    "NumericalFault",
    "Suggestion",
    "band_position",
    "expected_improvement",
    "front_loss_at",
    "log_expected_improvement",
    "pareto_mask",
    "suggest",
]

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def pareto_mask(loss: Tensor, cost: Tensor) -> Tensor:
    """Which points are on the Pareto front of lower loss against lower cost.

    Args:
        loss: `n` losses.
        cost: `n` costs.

    Returns:
        `n` booleans: True where no other point has ``cost <=`` and ``loss <=`` with at least one
        strict. Exact duplicates are both kept.
    """
    if loss.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    le_cost = cost.unsqueeze(0) <= cost.unsqueeze(1)  # [i, j]: cost_j <= cost_i
    le_loss = loss.unsqueeze(0) <= loss.unsqueeze(1)
    strict = (cost.unsqueeze(0) < cost.unsqueeze(1)) | (loss.unsqueeze(0) < loss.unsqueeze(1))
    dominated = (le_cost & le_loss & strict).any(dim=1)
    return ~dominated


def front_loss_at(front_cost: Tensor, front_loss: Tensor, cost: Tensor, *, empty: float) -> Tensor:
    """The front's best loss among points costing at most ``cost``.

    Args:
        front_cost: `k` costs of the reference points (any order).
        front_loss: `k` their losses.
        cost: `m` query costs.
        empty: the value where no reference point is that cheap.

    Returns:
        `m` losses.
    """
    order = torch.argsort(front_cost)
    c = front_cost[order]
    running = torch.cummin(front_loss[order], dim=0).values
    idx = torch.searchsorted(c, cost, right=True) - 1
    out = running[idx.clamp_min(0)]
    return torch.where(idx >= 0, out, torch.full_like(out, empty))


def log_expected_improvement(mean: Tensor, std: Tensor, best: Tensor) -> Tensor:
    """log E[max(best - Y, 0)] for Y ~ N(mean, std^2), stable far into the tails (minimisation)."""
    u = (best - mean) / std
    normal = torch.distributions.Normal(torch.zeros_like(u), torch.ones_like(u))
    # h(u) = u Phi(u) + phi(u); for u << 0 use the asymptotic phi(u) / u^2 (1 - 3/u^2).
    safe = u > -6.0
    u_s = torch.where(safe, u, torch.zeros_like(u))
    h = u_s * normal.cdf(u_s) + torch.exp(normal.log_prob(u_s))
    log_h_safe = torch.log(h.clamp_min(1e-300))
    u_t = torch.where(safe, -torch.ones_like(u) * 6.0, u)
    log_h_tail = -0.5 * u_t**2 - _LOG_SQRT_2PI - 2 * torch.log(-u_t) + torch.log1p(-3 / u_t**2)
    return torch.log(std) + torch.where(safe, log_h_safe, log_h_tail)


def expected_improvement(mean: Tensor, std: Tensor, best: Tensor) -> Tensor:
    """E[max(best - Y, 0)] for Y ~ N(mean, std^2)."""
    return torch.exp(log_expected_improvement(mean, std, best))


class NumericalFault(RuntimeError):
    """The models scored no candidate with a finite number (NaN predictions); the message says why."""


@dataclass(frozen=True)
class Geometry:
    """What the acquisition needs to know of the search space, without names.

    Attributes:
        limits: `2 x d` hard limits of the coordinates.
        nominal: `2 x d` box that Sobol candidates fill (the nominal ranges: ``[0, 1]``).
        choice_blocks: ``(start, stop)`` column ranges of one-hot encoded choices.
        round: maps `m x d` coordinates to representable ones (integers, one-hot).
        keys: hashable identity of each row of an `m x d` tensor, after rounding.
    """

    limits: Tensor
    nominal: Tensor
    choice_blocks: Sequence[tuple[int, int]]
    round: Callable[[Tensor], Tensor]
    keys: Callable[[Tensor], list[tuple[float, ...]]]


@dataclass(frozen=True)
class Suggestion:
    """The chosen point and what the models predicted for it (raw units)."""

    x: Tensor
    predicted_loss: float | None
    predicted_cost: float | None
    p_success: float | None
    log_score: float | None
    n_candidates: int
    note: str | None = None


def band_position(k: int, *, seed: int) -> float:
    """The k-th point of a golden-ratio (Weyl) sequence in ``[0, 1)``, offset by the seed: cost
    bands of successive asks that cover the cost range evenly, with no clumps."""
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    offset = (seed * 0.7548776662466927) % 1.0
    return (offset + k * golden) % 1.0


def _perturb(
    anchors: Tensor, n: int, *, radius: tuple[float, float], geometry: Geometry, generator: torch.Generator
) -> Tensor:
    """`n x d` Gaussian perturbations of randomly picked anchors, with log-uniform radii; each
    dimension moves with probability 1/2 (at least one does), each choice flips with prob 1/5."""
    d = anchors.shape[-1]
    pick = torch.randint(0, anchors.shape[0], (n,), generator=generator)
    X = anchors[pick].clone()
    lo, hi = math.log(radius[0]), math.log(radius[1])
    r = torch.exp(lo + (hi - lo) * torch.rand(n, 1, generator=generator, dtype=X.dtype))
    move = torch.rand(n, d, generator=generator) < 0.5
    move[torch.arange(n), torch.randint(0, d, (n,), generator=generator)] = True
    step = torch.randn(n, d, generator=generator, dtype=X.dtype) * r
    X = X + torch.where(move, step, torch.zeros_like(step))
    for start, stop in geometry.choice_blocks:
        k = stop - start
        X[:, start:stop] = anchors[pick, start:stop]
        flip = torch.rand(n, generator=generator) < 0.2
        new = torch.nn.functional.one_hot(torch.randint(0, k, (n,), generator=generator), k).to(X)
        X[flip, start:stop] = new[flip]
    return X


def _sobol(n: int, geometry: Geometry, generator: torch.Generator) -> Tensor:
    d = geometry.nominal.shape[-1]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    U = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n, dtype=torch.float64)
    lo, hi = geometry.nominal
    return lo + U * (hi - lo)


def suggest(
    surrogate: Surrogate,
    data: ObservedData,
    X_pending: Tensor,
    *,
    geometry: Geometry,
    exclude: Collection[tuple[float, ...]],
    generator: torch.Generator,
    n_candidates: int = 2000,
    sobol_fraction: float = 0.2,
    max_log_cost: float | None = None,
    top_k: int = 5,
    band_width: float = 0.1,
    band_position: float | None = None,
) -> Suggestion:
    """Choose the next point to evaluate.

    Args:
        surrogate: the fitted models (without the pending points: they are added here).
        data: the observations the surrogate was fitted to.
        X_pending: `p x d` points asked but not yet told.
        geometry: the search space's shape (limits, choices, rounding).
        exclude: keys of configs never to suggest (observed and pending ones).
        generator: the caller's random generator; no global RNG is used.
        n_candidates: candidates scored in the first round.
        sobol_fraction: share of first-round candidates drawn over the whole nominal box.
        max_log_cost: drop candidates whose predicted log cost exceeds this.
        top_k: the winner is sampled among the ``top_k`` scores, in proportion to the score.
        band_width: width of the ask's cost band, as a fraction of the box's log-cost range.
        band_position: where in ``[0, 1]`` along the log-cost range this ask's band lies; drawn
            at random if None. Successive asks should pass a low-discrepancy sequence (see
            :func:`band_position`) so that bands cover the range evenly.

    Returns:
        A :class:`Suggestion`; ``x`` is a rounded `d` tensor whose key is not in ``exclude``.
    """
    model = surrogate.with_pending(X_pending)
    ok = data.ok
    # Denoised front: the GP's mean at the observed points, against their observed cost.
    if model.loss_model is not None and int(ok.sum()) > 0:
        z_obs, _ = surrogate.loss(data.X[ok])
        log_cost_obs = torch.log(data.cost[ok])
        empty = float(z_obs.max())
    else:
        z_obs = log_cost_obs = torch.empty(0, dtype=torch.float64)
        empty = 0.0
    # The cost band of this ask: log-uniform over the predicted cost range of the box (capped),
    # so trials spread over the whole front instead of polishing one end of it.
    X_box = _sobol(256, geometry, generator)
    box_cost = model.log_cost(geometry.round(X_box))
    lo_c, hi_c = float(box_cost.min()), float(box_cost.max())
    if max_log_cost is not None:
        hi_c = max(min(hi_c, max_log_cost), lo_c)
    if band_position is None:
        band_position = float(torch.rand(1, generator=generator, dtype=torch.float64))
    u = band_position
    band_center = lo_c + u * (hi_c - lo_c)
    band_half = band_width * (hi_c - lo_c) / 2
    # Costs that vary by under ~10 % across the box (e.g. a constant cost) have no bands: the cost
    # model's noise would otherwise decide which candidates win.
    use_band = hi_c - lo_c > 0.1

    if z_obs.numel():
        on_front = pareto_mask(z_obs, log_cost_obs)
        near = (log_cost_obs - band_center).abs() <= 3 * band_half if use_band else torch.ones_like(on_front)
        # Anchors: the front, plus the best observations near the band (its neighbourhood).
        best_near = torch.nonzero(near).squeeze(-1)
        best_near = best_near[torch.argsort(z_obs[best_near])[:top_k]]
        anchors = torch.cat([data.X[ok][on_front], data.X[ok][best_near]])
    else:
        anchors = data.X if len(data) else X_box[:1]

    n_sobol = int(round(sobol_fraction * n_candidates))
    n_local = n_candidates - n_sobol
    X1 = torch.cat([
        _perturb(anchors, n_local, radius=(0.01, 0.3), geometry=geometry, generator=generator),
        _sobol(n_sobol, geometry, generator),
    ])

    n_nan = [0]  # candidates whose score came out NaN (a numerical fault in the models)

    def score(X: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        X = geometry.round(X)
        mean, std = model.loss(X)
        log_cost = model.log_cost(X)
        if z_obs.numel():
            target = front_loss_at(log_cost_obs, z_obs, log_cost, empty=empty)
        else:
            target = torch.zeros_like(mean)
        p_ok = model.p_success(X)
        s = log_expected_improvement(mean, std, target) + torch.log(p_ok.clamp_min(1e-12))
        # Outside the band a candidate is penalised by how far it lies from it (in band widths):
        # if nothing lands inside, the closest good candidates still win.
        if use_band:
            outside = ((log_cost - band_center).abs() - band_half).clamp_min(0) / band_half
            s = s - 50.0 * outside
        if max_log_cost is not None:
            s = torch.where(log_cost <= max_log_cost, s, torch.full_like(s, -math.inf))
        nan = torch.isnan(s)
        n_nan[0] += int(nan.sum())
        s = torch.where(nan, torch.full_like(s, -math.inf), s)  # never let a NaN win a topk
        return X, s, mean, log_cost, p_ok

    X1, s1, *_ = score(X1)
    top = torch.topk(s1, min(10, s1.numel())).indices
    X2 = _perturb(X1[top], max(n_candidates // 4, 1), radius=(0.003, 0.05), geometry=geometry, generator=generator)
    X2, s2, *_ = score(X2)
    X = torch.cat([X1, X2])
    s = torch.cat([s1, s2])

    # Never repeat an observed or pending config (after rounding), nor suggest one twice.
    keys = geometry.keys(X)
    seen: set[tuple[float, ...]] = set(exclude)
    fresh = torch.zeros(len(keys), dtype=torch.bool)
    for i, k in enumerate(keys):
        if k not in seen:
            fresh[i] = True
            seen.add(k)
    note = None
    if not bool(fresh.any()):
        raise RuntimeError(
            "every candidate repeats an observed or pending config: the space is exhausted "
            "(widen the bounds, or drop integer multiples that make it too coarse)"
        )
    s = torch.where(fresh, s, torch.full_like(s, -math.inf))
    if n_nan[0]:
        note = f"{n_nan[0]} of {X.shape[0]} candidates scored NaN (a numerical fault in the models); skipped them"
        if not bool(torch.isfinite(s).any()):
            raise NumericalFault(note.replace("skipped them", "no candidate has a finite score"))
    if not bool(torch.isfinite(s).any()):
        # Nothing under the cost cap: take the cheapest fresh candidate and say so.
        log_cost = model.log_cost(X)
        log_cost = torch.where(fresh, log_cost, torch.full_like(log_cost, math.inf))
        i = int(torch.argmin(log_cost))
        note = "no candidate is predicted under max_suggestion_cost; chose the cheapest"
    else:
        k = min(top_k, int(torch.isfinite(s).sum()))
        top_s, top_i = torch.topk(s, k)
        w = torch.softmax(top_s - top_s.max(), dim=0)
        i = int(top_i[torch.multinomial(w, 1, generator=generator)])
    x = X[i : i + 1]
    mean, std = model.loss(x)
    predicted_loss = float(surrogate.warp.inverse(mean)) if surrogate.warp is not None else None
    return Suggestion(
        x=x[0],
        predicted_loss=predicted_loss,
        predicted_cost=float(torch.exp(model.log_cost(x))) if model.cost_model is not None else None,
        p_success=float(model.p_success(x)),
        log_score=float(s[i]) if math.isfinite(float(s[i])) else None,
        n_candidates=X.shape[0],
        note=note,
    )
