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

from .surrogate import Surrogate
from .trial import ObservedData

__all__ = [
    "CostBand",
    "Geometry",
    "NumericalFault",
    "Suggestion",
    "band_position",
    "candidates",
    "choose",
    "cost_band",
    "expected_improvement",
    "front_loss_at",
    "log_expected_improvement",
    "pareto_mask",
    "rerun_options",
    "score",
    "suggest",
]

# --- the constants of the search, each with its reason -------------------------------------
# Cost bands of successive asks follow a golden-ratio (Weyl) sequence: the most even cover of
# [0, 1) by a sequence that never knows how long it will run.
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
# Each seed offsets that sequence by seed x 1/rho (rho the plastic number, the R2 sequence's
# first coefficient): offsets of neighbouring seeds are far apart and never repeat.
SEED_OFFSET = 0.7548776662466927
# The box's predicted cost range is measured at this many Sobol points (enough to find its ends
# to a few % of the range; the cost model is cheap to evaluate).
N_BOX_POINTS = 256
# Costs that vary by less than this in log (about 10 %) across the box get no bands: the cost
# model's noise would otherwise decide which candidates win.
FLAT_LOG_COST = 0.1
# Anchors near the band: observations within this many band half-widths of its centre.
NEAR_BAND = 3.0
# Outside its band a candidate loses this much log score per band width of distance: far more
# than any difference in log EI, so a candidate inside the band always wins, and if none lands
# inside, the closest good candidates do.
OUTSIDE_BAND_PENALTY = 50.0
# Perturbation radii (search-space units, log-uniform) of the first round around anchors and of
# the second, refining round around the best few; the refining round scores a quarter as many.
LOCAL_RADIUS = (0.01, 0.3)
REFINE_RADIUS = (0.003, 0.05)
N_REFINE_ANCHORS = 10
REFINE_SHARE = 0.25
# Each dimension of a perturbation moves with probability 1/2, each choice flips with 1/5.
P_MOVE, P_FLIP = 0.5, 0.2

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
        choice_blocks: ``(start, stop)`` column ranges of one-hot encoded choices.
        round: maps `m x d` coordinates to representable ones (integers, one-hot).
        keys: hashable identity of each row of an `m x d` tensor, after rounding.
    """

    limits: Tensor
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
    return ((seed * SEED_OFFSET) % 1.0 + k * GOLDEN) % 1.0


@dataclass(frozen=True)
class CostBand:
    """The log-cost window of one ask: ``center +- half``; ``active`` False when costs barely vary."""

    center: float
    half: float
    active: bool

    def distance(self, log_cost: Tensor) -> Tensor:
        """How far outside the band each log cost lies, in band widths (0 inside)."""
        return ((log_cost - self.center).abs() - self.half).clamp_min(0) / self.half


def cost_band(model: Surrogate, geometry: Geometry, generator: torch.Generator, *, position: float,
              width: float, max_log_cost: float | None) -> CostBand:
    """The cost band at ``position`` in ``[0, 1]`` along the box's predicted log-cost range
    (capped by ``max_log_cost``), ``width`` of that range wide."""
    box_cost = model.log_cost(geometry.round(_sobol(N_BOX_POINTS, geometry, generator)))
    lo, hi = float(box_cost.min()), float(box_cost.max())
    if max_log_cost is not None:
        hi = max(min(hi, max_log_cost), lo)
    return CostBand(center=lo + position * (hi - lo), half=width * (hi - lo) / 2, active=hi - lo > FLAT_LOG_COST)


def _perturb(anchors: Tensor, n: int, *, radius: tuple[float, float], geometry: Geometry,
             generator: torch.Generator) -> Tensor:
    """`n x d` Gaussian perturbations of randomly picked anchors, with log-uniform radii; each
    dimension moves with probability ``P_MOVE`` (at least one does), each choice flips with ``P_FLIP``."""
    d = anchors.shape[-1]
    pick = torch.randint(0, anchors.shape[0], (n,), generator=generator)
    X = anchors[pick].clone()
    lo, hi = math.log(radius[0]), math.log(radius[1])
    r = torch.exp(lo + (hi - lo) * torch.rand(n, 1, generator=generator, dtype=X.dtype))
    move = torch.rand(n, d, generator=generator) < P_MOVE
    move[torch.arange(n), torch.randint(0, d, (n,), generator=generator)] = True
    step = torch.randn(n, d, generator=generator, dtype=X.dtype) * r
    X = X + torch.where(move, step, torch.zeros_like(step))
    for start, stop in geometry.choice_blocks:
        k = stop - start
        X[:, start:stop] = anchors[pick, start:stop]
        flip = torch.rand(n, generator=generator) < P_FLIP
        new = torch.nn.functional.one_hot(torch.randint(0, k, (n,), generator=generator), k).to(X)
        X[flip, start:stop] = new[flip]
    return X


def _sobol(n: int, geometry: Geometry, generator: torch.Generator) -> Tensor:
    d = geometry.limits.shape[-1]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n, dtype=torch.float64)


def _anchors(data: ObservedData, z_obs: Tensor, log_cost_obs: Tensor, band: CostBand, *, top_k: int) -> Tensor:
    """The points candidates are drawn around: the front, plus the best observations near the band."""
    ok = data.ok
    on_front = pareto_mask(z_obs, log_cost_obs)
    near = (log_cost_obs - band.center).abs() <= NEAR_BAND * band.half if band.active else torch.ones_like(on_front)
    best_near = torch.nonzero(near).squeeze(-1)
    best_near = best_near[torch.argsort(z_obs[best_near])[:top_k]]
    return torch.cat([data.X[ok][on_front], data.X[ok][best_near]])


def candidates(anchors: Tensor, n: int, *, geometry: Geometry, generator: torch.Generator,
               sobol_fraction: float) -> Tensor:
    """`n x d` first-round candidates: perturbations of the anchors, and a ``sobol_fraction``
    share over the whole nominal box (so the entire range keeps being explored)."""
    n_sobol = int(round(sobol_fraction * n))
    return torch.cat([
        _perturb(anchors, n - n_sobol, radius=LOCAL_RADIUS, geometry=geometry, generator=generator),
        _sobol(n_sobol, geometry, generator),
    ])


@dataclass(frozen=True)
class Scores:
    """Candidates (rounded) and their log scores; NaN scores are already ``-inf``, and counted."""

    X: Tensor
    log_score: Tensor
    n_nan: int


def score(model: Surrogate, X: Tensor, *, geometry: Geometry, front: tuple[Tensor, Tensor, float] | None,
          band: CostBand, max_log_cost: float | None) -> Scores:
    """``log EI(x | the front's loss at x's predicted cost) + log P(success | x)``, penalised
    outside the cost band and ``-inf`` above ``max_log_cost``.

    Args:
        front: ``(log costs, warped losses, value where no front point is that cheap)`` of the
            denoised front, or None before any model (then every candidate improves on 0).
    """
    X = geometry.round(X)
    mean, std = model.loss(X)
    log_cost = model.log_cost(X)
    target = front_loss_at(front[0], front[1], log_cost, empty=front[2]) if front else torch.zeros_like(mean)
    s = log_expected_improvement(mean, std, target) + torch.log(model.p_success(X).clamp_min(1e-12))
    if band.active:
        s = s - OUTSIDE_BAND_PENALTY * band.distance(log_cost)
    if max_log_cost is not None:
        s = torch.where(log_cost <= max_log_cost, s, torch.full_like(s, -math.inf))
    nan = torch.isnan(s)
    return Scores(X=X, log_score=torch.where(nan, torch.full_like(s, -math.inf), s), n_nan=int(nan.sum()))


def choose(scores: Scores, *, exclude: Collection[tuple[float, ...]], geometry: Geometry,
           generator: torch.Generator, top_k: int) -> tuple[int, Tensor, Tensor]:
    """The index of the winner among candidates not in ``exclude`` (nor repeated): sampled among
    the ``top_k`` scores in proportion to the score, which keeps some exploration (argmax-only
    search hugs the boundaries of the box); -1 when no fresh candidate has a finite score. Also
    returns the scores with repeats masked, and which candidates are fresh.

    Raises:
        RuntimeError: every candidate repeats an excluded config.
    """
    keys = geometry.keys(scores.X)
    seen: set[tuple[float, ...]] = set(exclude)
    fresh = torch.zeros(len(keys), dtype=torch.bool)
    for i, k in enumerate(keys):
        if k not in seen:
            fresh[i] = True
            seen.add(k)
    if not bool(fresh.any()):
        raise RuntimeError(
            "every candidate repeats an observed or pending config: the space is exhausted "
            "(widen the bounds, or drop integer multiples that make it too coarse)"
        )
    s = torch.where(fresh, scores.log_score, torch.full_like(scores.log_score, -math.inf))
    if not bool(torch.isfinite(s).any()):
        return -1, s, fresh
    k = min(top_k, int(torch.isfinite(s).sum()))
    top_s, top_i = torch.topk(s, k)
    w = torch.softmax(top_s - top_s.max(), dim=0)
    return int(top_i[torch.multinomial(w, 1, generator=generator)]), s, fresh


def rerun_options(data: ObservedData, keys: Sequence[tuple[float, ...]], *, max_repeats: int,
                  exclude: Collection[tuple[float, ...]]) -> list[int]:
    """Indices of the observations on the front that may be re-run (fewer than ``max_repeats``
    runs of their config, none pending), so a lucky seed does not define the front.

    Args:
        keys: the key of every observation's config (``geometry.keys(data.X)``).
    """
    ok = torch.nonzero(data.ok).squeeze(-1).tolist()
    counts: dict[tuple[float, ...], int] = {}
    for i in ok:
        counts[keys[i]] = counts.get(keys[i], 0) + 1
    on_front = pareto_mask(data.loss[ok], data.cost[ok]) if ok else torch.zeros(0, dtype=torch.bool)
    return [i for i, f in zip(ok, on_front.tolist()) if f and counts[keys[i]] < max_repeats and keys[i] not in exclude]


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
    """Choose the next point to evaluate: cost band, candidates, score, refine, choice.

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
    # Denoised front: the GP's mean at the observed points, against their observed cost.
    front = None
    if model.loss_model is not None and int(data.ok.sum()) > 0:
        z_obs, _ = surrogate.loss(data.X[data.ok])
        front = (torch.log(data.cost[data.ok]), z_obs, float(z_obs.max()))
    if band_position is None:
        band_position = float(torch.rand(1, generator=generator, dtype=torch.float64))
    band = cost_band(model, geometry, generator, position=band_position, width=band_width, max_log_cost=max_log_cost)

    if front is not None:
        anchors = _anchors(data, front[1], front[0], band, top_k=top_k)
    else:
        anchors = data.X if len(data) else _sobol(1, geometry, generator)
    first = score(model, candidates(anchors, n_candidates, geometry=geometry, generator=generator,
                                    sobol_fraction=sobol_fraction),
                  geometry=geometry, front=front, band=band, max_log_cost=max_log_cost)
    best = torch.topk(first.log_score, min(N_REFINE_ANCHORS, first.log_score.numel())).indices
    refined = score(model, _perturb(first.X[best], max(int(n_candidates * REFINE_SHARE), 1), radius=REFINE_RADIUS,
                                    geometry=geometry, generator=generator),
                    geometry=geometry, front=front, band=band, max_log_cost=max_log_cost)
    scores = Scores(X=torch.cat([first.X, refined.X]), log_score=torch.cat([first.log_score, refined.log_score]),
                    n_nan=first.n_nan + refined.n_nan)

    i, s, fresh = choose(scores, exclude=exclude, geometry=geometry, generator=generator, top_k=top_k)
    note = None
    if scores.n_nan:
        note = f"{scores.n_nan} of {scores.X.shape[0]} candidates scored NaN (a numerical fault in the models); skipped them"
        if i < 0:
            raise NumericalFault(note.replace("skipped them", "no candidate has a finite score"))
    if i < 0:
        # Nothing under the cost cap: take the cheapest fresh candidate and say so.
        log_cost = model.log_cost(scores.X)
        i = int(torch.argmin(torch.where(fresh, log_cost, torch.full_like(log_cost, math.inf))))
        note = "no candidate is predicted under max_suggestion_cost; chose the cheapest"
    x = scores.X[i : i + 1]
    mean, _ = model.loss(x)
    return Suggestion(
        x=x[0],
        predicted_loss=float(surrogate.warp.inverse(mean)) if surrogate.warp is not None else None,
        predicted_cost=float(torch.exp(model.log_cost(x))) if model.cost_model is not None else None,
        p_success=float(model.p_success(x)),
        log_score=float(s[i]) if math.isfinite(float(s[i])) else None,
        n_candidates=scores.X.shape[0],
        note=note,
    )
