"""The acquisition: BoTorch's log expected (hypervolume) improvement, weighted by success.

The next point maximises, over the search space,

* where the cost varies (the usual case): BoTorch's ``qLogExpectedHypervolumeImprovement`` of
  the front of (warped loss, log cost), both minimised (Daulton et al. 2020; the log form of
  Ament et al. 2023 keeps gradients alive far from the front). Improving the front anywhere
  counts, the cheap end as much as the expensive one, so no cost bands are needed;
* where it barely varies (``FLAT_LOG_COST``): ``LogExpectedImprovement`` of the loss;

plus ``log P(success | x)`` from the failure model, and ``log P(cost <= max_suggestion_cost)``
when there is a cap. Pending trials are fantasised at their predicted loss (kriging believer):
the loss GP is conditioned on them and their predicted points join the front, so parallel asks
spread out at a cost linear, not exponential, in their number, and each ask is one point.

The maximisation follows BoTorch's ``optimize_acqf``: raw samples (Sobol over the box and
perturbations of the front, in the spirit of CARBS, Fetterman et al. 2023), screened, the best
rescored with the full count of posterior samples, then L-BFGS-B (``gen_candidates_scipy``) from
the best few, with one-hot choice columns held fixed; then the points are rounded (integers,
one-hot) and the best one that repeats no observed or pending config wins. The screening only
picks the starts, so it uses the log of BoTorch's analytic ``ExpectedHypervolumeImprovement``
(exact for one point of independent loss and cost GPs, and ~6x cheaper than 32 posterior
samples), or the Monte-Carlo estimate with fewer samples where the analytic value underflows for
almost every candidate. (The analytic value throughout, refinement and choice included, was tried:
asks 2.7x faster, but the LCBench hypervolume @50 fell from 1.075 to 1.032 over 4 tasks x 5 seeds.)

Everything here works on float64 search-space tensors; no param names.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .surrogate import Surrogate
from .trial import ObservedData

__all__ = [
    "FLAT_LOG_COST",
    "Geometry",
    "NumericalFault",
    "Suggestion",
    "acquisition_function",
    "best_fresh",
    "candidates",
    "pareto_mask",
    "rerun_informative",
    "rerun_options",
    "suggest",
]

# --- the constants of the search, each with its reason -------------------------------------
# Observed costs that vary by less than this in log (about 10 %) make the cost an unreliable
# second objective: the cost model's noise would decide. Then only the loss is improved.
FLAT_LOG_COST = 0.1
# The analytic screening hands over to the Monte-Carlo estimate when fewer raw samples than this
# share (at least ``N_RESTARTS``) score above 1e-154 (half of float64's range).
MIN_POSITIVE_SHARE = 0.01
# Quasi-MC samples of the posterior per acquisition value (BoTorch's default for q = 1 is 512;
# 128 keeps an ask fast and its estimate within a few % where it matters, near the maximum).
N_MC_SAMPLES = 128
# Where the analytic screening underflows, the raw samples are screened with fewer posterior
# samples (their ranking only picks the starts); the best of them are then rescored with the
# full count, as are the refined points.
N_SCREEN_SAMPLES = 32
N_RESCORE = 16
# L-BFGS-B restarts from the best raw samples, and their iterations.
N_RESTARTS = 4
MAXITER = 50
# The hypervolume's reference point lies this share of each objective's observed range beyond
# its worst observed value (the usual nadir-plus-margin choice), so the front's end points count.
REF_MARGIN = 0.1
# Perturbations around the front: radii (search-space units, log-uniform); each dimension moves
# with probability 1/2, each choice flips with 1/5.
LOCAL_RADIUS = (0.01, 0.3)
P_MOVE, P_FLIP = 0.5, 0.2
# A front point is worth re-running only while the noise variance (in standardised units, where
# the data have variance ~1) is at least this: estimated from repeated runs once there are any
# (on a deterministic objective they agree exactly), from the loss GP's fitted noise before.
NOISE_FOR_RERUN = 0.01
# The smallest positive float64: the analytic improvement's floor before its log.
TINY = torch.finfo(torch.float64).tiny
LOG_TINY = math.log(TINY)


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
    kind: str | None = None


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


def candidates(anchors: Tensor, n: int, *, geometry: Geometry, generator: torch.Generator,
               sobol_fraction: float) -> Tensor:
    """`n x d` first-round candidates: perturbations of the anchors, and a ``sobol_fraction``
    share over the whole nominal box (so the entire range keeps being explored)."""
    n_sobol = round(sobol_fraction * n)
    return torch.cat([
        _perturb(anchors, n - n_sobol, radius=LOCAL_RADIUS, geometry=geometry, generator=generator),
        _sobol(n_sobol, geometry, generator),
    ])


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


def rerun_informative(surrogate: Surrogate, data: ObservedData, keys: Sequence[tuple[float, ...]]) -> bool:
    """Whether a rerun would tell something new. Once some config has been run twice, the spread
    of its repeats decides (identical repeats: the objective is deterministic, never again);
    before that, the loss GP's fitted noise does. Both in warped, standardised loss units."""
    if surrogate.loss_model is None or surrogate.warp is None:
        return False
    runs: dict[tuple[float, ...], list[float]] = {}
    z = surrogate.warp(data.loss)
    for i in torch.nonzero(data.ok).squeeze(-1).tolist():
        runs.setdefault(keys[i], []).append(float(z[i]))
    repeats = [torch.tensor(v, dtype=torch.float64) for v in runs.values() if len(v) > 1]
    if repeats:
        pooled = sum(float(((r - r.mean()) ** 2).sum()) for r in repeats) / sum(len(r) - 1 for r in repeats)
        return pooled >= NOISE_FOR_RERUN
    return surrogate.loss_noise >= NOISE_FOR_RERUN


def _with_success(base, surrogate: Surrogate, max_log_cost: float | None):
    """``base`` (a BoTorch acquisition function on a log scale) plus ``log P(success)`` and, with a
    cap, ``log P(log cost <= max_log_cost)``: still a BoTorch ``AcquisitionFunction``, so BoTorch's
    optimizers take it. (Defined here, not at module level, so importing this module needs no BoTorch.)"""
    from botorch.acquisition import AcquisitionFunction

    class WithSuccess(AcquisitionFunction):
        def __init__(self) -> None:
            super().__init__(model=base.model)
            self.base = base

        def forward(self, X: Tensor) -> Tensor:
            value = self.base(X)
            flat = X.reshape(-1, X.shape[-1])
            value = value + torch.log(surrogate.p_success(flat).clamp_min(1e-12)).reshape(X.shape[:-1]).sum(-1)
            if max_log_cost is not None and surrogate.cost_model is not None:
                post = surrogate.cost_model.posterior(flat)
                cap = (max_log_cost - surrogate.cost_scale.mean) / surrogate.cost_scale.std
                u = (cap - post.mean.reshape(-1)) / post.variance.reshape(-1).clamp_min(1e-12).sqrt()
                value = value + torch.special.log_ndtr(u).reshape(X.shape[:-1]).sum(-1)
            return value

    return WithSuccess()


def _log_analytic_ehvi(models, ref: Tensor, partitioning):
    """The log of BoTorch's analytic ``ExpectedHypervolumeImprovement`` of two minimised outputs:
    a BoTorch acquisition function, ``log(0) -> LOG_TINY`` (a finite floor, no gradient)."""
    from botorch.acquisition import AcquisitionFunction
    from botorch.acquisition.multi_objective.analytic import ExpectedHypervolumeImprovement
    from botorch.acquisition.objective import PosteriorTransform
    from botorch.posteriors.gpytorch import GPyTorchPosterior

    class Negated(PosteriorTransform):
        """The posterior of ``-Y`` (BoTorch's hypervolume maximises)."""

        scalarize = False

        def evaluate(self, Y: Tensor) -> Tensor:
            return -Y

        def forward(self, posterior, X: Tensor | None = None):
            return GPyTorchPosterior(posterior.distribution * -1.0)

    class LogAnalyticEHVI(AcquisitionFunction):
        def __init__(self) -> None:
            super().__init__(model=models)
            self.ehvi = ExpectedHypervolumeImprovement(models, ref_point=ref.tolist(), partitioning=partitioning,
                                                       posterior_transform=Negated())

        def forward(self, X: Tensor) -> Tensor:
            return torch.log(self.ehvi(X).clamp_min(TINY))

    return LogAnalyticEHVI()


def acquisition_function(surrogate: Surrogate, data: ObservedData, X_pending: Tensor, *,
                         generator: torch.Generator, max_log_cost: float | None = None,
                         best_loss_only: bool = False, analytic: bool = False):
    """The BoTorch acquisition function of this ask (see the module docstring) and its kind,
    ``"log_ehvi"`` or ``"log_ei"``.

    Args:
        analytic: the hypervolume improvement by the log of the analytic
            ``ExpectedHypervolumeImprovement`` rather than ``qLogExpectedHypervolumeImprovement``
            (the raw samples' screening).
    """
    from botorch.acquisition import LogExpectedImprovement
    from botorch.acquisition.multi_objective import qLogExpectedHypervolumeImprovement
    from botorch.acquisition.multi_objective.objective import WeightedMCMultiOutputObjective
    from botorch.models import ModelListGP
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.multi_objective.box_decompositions import FastNondominatedPartitioning

    ok = data.ok
    model = surrogate.with_pending(X_pending)
    z = surrogate.warp(data.loss[ok])
    log_cost = torch.log(data.cost[ok])
    if X_pending.shape[0]:  # pending points, at their predicted outcomes, join the front
        z = torch.cat([z, surrogate.loss(X_pending)[0]])
        log_cost = torch.cat([log_cost, surrogate.log_cost(X_pending)])
    spread = float(torch.log(data.cost[ok]).max() - torch.log(data.cost[ok]).min())
    if surrogate.cost_model is None or spread < FLAT_LOG_COST or best_loss_only:
        # The loss GP is already conditioned on the pending points, so one point's EI is exact.
        base = LogExpectedImprovement(model.loss_model, best_f=float(z.min()), maximize=False)
        return _with_success(base, surrogate, max_log_cost), "log_ei"
    c = (log_cost - surrogate.cost_scale.mean) / surrogate.cost_scale.std
    Y = -torch.stack([z, c], -1)  # BoTorch maximises
    worst, best = Y.min(0).values, Y.max(0).values
    ref = worst - REF_MARGIN * (best - worst).clamp_min(1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ModelListGP of models with a custom mean
        models = ModelListGP(model.loss_model, surrogate.cost_model)
    partitioning = FastNondominatedPartitioning(ref_point=ref, Y=Y)
    if analytic:
        return _with_success(_log_analytic_ehvi(models, ref, partitioning), surrogate, max_log_cost), "log_ehvi"
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([N_MC_SAMPLES]), seed=seed)
    base = qLogExpectedHypervolumeImprovement(
        models, ref_point=ref.tolist(), partitioning=partitioning, sampler=sampler,
        objective=WeightedMCMultiOutputObjective(torch.tensor([-1.0, -1.0], dtype=Y.dtype)),
    )
    return _with_success(base, surrogate, max_log_cost), "log_ehvi"


def _bounds(geometry: Geometry, X: Tensor) -> Tensor:
    """`2 x d` box of the optimisation: the nominal unit box widened to the observed points,
    inside the hard limits."""
    lo = torch.minimum(torch.zeros(X.shape[-1], dtype=X.dtype), X.min(0).values if len(X) else 0.0)
    hi = torch.maximum(torch.ones(X.shape[-1], dtype=X.dtype), X.max(0).values if len(X) else 1.0)
    return torch.stack([torch.maximum(lo, geometry.limits[0]), torch.minimum(hi, geometry.limits[1])])


def _evaluate(acqf, X: Tensor, batch: int = 512) -> Tensor:
    if X.shape[0] == 0:
        return torch.empty(0, dtype=X.dtype)
    with torch.no_grad():
        return torch.cat([acqf(X[i : i + batch].unsqueeze(1)) for i in range(0, X.shape[0], batch)])


@contextlib.contextmanager
def _screening(acqf):
    """Score with ``N_SCREEN_SAMPLES`` posterior samples inside the block (a Monte-Carlo
    acquisition function; an analytic one is left as is)."""
    sampler = getattr(acqf.base, "sampler", None)
    if sampler is None:
        yield
        return
    from botorch.sampling import SobolQMCNormalSampler

    acqf.base.sampler = SobolQMCNormalSampler(sample_shape=torch.Size([N_SCREEN_SAMPLES]), seed=sampler.seed)
    try:
        yield
    finally:
        acqf.base.sampler = sampler


def _refine(acqf, starts: Tensor, bounds: Tensor, geometry: Geometry) -> Tensor:
    """L-BFGS-B from each start (BoTorch's ``gen_candidates_scipy``, batched), one-hot columns fixed."""
    from botorch.generation.gen import gen_candidates_scipy

    choice_cols = [j for a, b in geometry.choice_blocks for j in range(a, b)]
    by_choice: dict[tuple[float, ...], list[int]] = {}  # starts with the same choices run as one batch
    for i in range(starts.shape[0]):
        by_choice.setdefault(tuple(starts[i, choice_cols].tolist()), []).append(i)
    groups = [starts[rows] for rows in by_choice.values()]
    out = []
    for g in groups:
        fixed = {j: float(g[0, j]) for j in choice_cols} or None
        X0 = g.clamp(bounds[0], bounds[1]).unsqueeze(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer warnings (e.g. an early stop) change nothing here
            X, _ = gen_candidates_scipy(X0, acqf, lower_bounds=bounds[0], upper_bounds=bounds[1],
                                        fixed_features=fixed, options={"maxiter": MAXITER})
        out.append(X.detach().squeeze(1))
    return torch.cat(out)


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
    best_loss_only: bool = False,
    pool: Tensor | None = None,
) -> Suggestion:
    """Choose the next point to evaluate: raw samples, L-BFGS-B from the best, rounding, choice.

    Args:
        surrogate: the fitted models (without the pending points: they are added here).
        data: the observations the surrogate was fitted to.
        X_pending: `p x d` points asked but not yet told.
        geometry: the search space's shape (limits, choices, rounding).
        exclude: keys of configs never to suggest (observed and pending ones).
        generator: the caller's random generator; no global RNG is used.
        n_candidates: raw samples scored before the gradient steps.
        sobol_fraction: share of raw samples drawn over the whole nominal box.
        max_log_cost: weight candidates by the probability that their log cost stays under this.
        best_loss_only: improve the best loss (the front's expensive end) rather than the front.
        pool: `n x d` rounded points to choose among (pool mode: replaying a sweep); no raw
            samples and no gradient steps then.

    Returns:
        A :class:`Suggestion`; ``x`` is a rounded `d` tensor whose key is not in ``exclude``.
    """
    acqf, kind = acquisition_function(surrogate, data, X_pending, generator=generator, max_log_cost=max_log_cost,
                                      best_loss_only=best_loss_only)
    if pool is not None:
        raw = pool
    else:
        front = data.X[data.ok][pareto_mask(data.loss[data.ok], data.cost[data.ok])]
        raw = candidates(front if len(front) else data.X, n_candidates, geometry=geometry, generator=generator,
                         sobol_fraction=sobol_fraction)
        raw = geometry.round(raw.clamp(geometry.limits[0], geometry.limits[1]))
    values = None
    if kind == "log_ehvi":  # screen by the exact analytic value, unless it underflows almost everywhere
        screen, _ = acquisition_function(surrogate, data, X_pending, generator=generator, max_log_cost=max_log_cost,
                                         best_loss_only=best_loss_only, analytic=True)
        values = _evaluate(screen, raw)
        if int((values > LOG_TINY / 2).sum()) < max(N_RESTARTS, MIN_POSITIVE_SHARE * len(raw)):
            values = None
    if values is None:
        with _screening(acqf):
            values = _evaluate(acqf, raw)
    finite = torch.isfinite(values)
    n_nan = int(torch.isnan(values).sum())
    if not bool(finite.any()):
        raise NumericalFault(f"{n_nan} of {raw.shape[0]} candidates scored NaN (a numerical fault in the models); "
                             "no candidate has a finite score")
    starts = raw[torch.topk(torch.where(finite, values, -math.inf), min(N_RESTARTS, int(finite.sum()))).indices]
    refined = raw[:0] if pool is not None else geometry.round(_refine(acqf, starts, _bounds(geometry, data.X), geometry))
    if getattr(acqf.base, "sampler", None) is not None:  # the screened values were estimates: rescore the best
        top = torch.topk(torch.where(finite, values, -math.inf), min(N_RESCORE, int(finite.sum()))).indices
        values[top] = _evaluate(acqf, raw[top])
    X = torch.cat([refined, raw])
    values = torch.cat([_evaluate(acqf, refined), values])
    i = best_fresh(X, values, exclude=exclude, geometry=geometry)
    x = X[i : i + 1]
    mean, _ = surrogate.loss(x)
    note = None
    if n_nan:
        note = f"{n_nan} of {raw.shape[0]} candidates scored NaN (a numerical fault in the models); skipped them"
    if max_log_cost is not None and float(surrogate.log_cost(x)) > max_log_cost:
        note = "no candidate is predicted under max_suggestion_cost; chose the likeliest"
    value = float(values[i])
    return Suggestion(
        x=x[0],
        predicted_loss=float(surrogate.warp.inverse(mean)) if surrogate.warp is not None else None,
        predicted_cost=float(torch.exp(surrogate.log_cost(x))) if surrogate.cost_model is not None else None,
        p_success=float(surrogate.p_success(x)),
        log_score=value if math.isfinite(value) else None,
        n_candidates=X.shape[0],
        note=note,
        kind=kind,
    )


def best_fresh(X: Tensor, values: Tensor, *, exclude: Collection[tuple[float, ...]], geometry: Geometry) -> int:
    """The index of the best-scoring row that repeats no excluded config (nor an earlier row).

    Raises:
        RuntimeError: every row repeats an excluded config.
    """
    seen: set[tuple[float, ...]] = set(exclude)
    fresh = torch.zeros(X.shape[0], dtype=torch.bool)
    for i, k in enumerate(geometry.keys(X)):
        if k not in seen:
            fresh[i] = True
            seen.add(k)
    if not bool(fresh.any()):
        raise RuntimeError(
            "every candidate repeats an observed or pending config: the space is exhausted "
            "(widen the bounds, or drop integer multiples that make it too coarse)"
        )
    v = torch.where(fresh & ~torch.isnan(values), values, torch.full_like(values, -math.inf))
    if not bool(torch.isfinite(v).any()):  # e.g. every fresh point is certain to fail: take one anyway
        return int(torch.nonzero(fresh)[0])
    return int(torch.argmax(v))
