"""TunerSettings: how the tuner searches (a frozen, self-validating dataclass)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TunerSettings"]


@dataclass(frozen=True)
class TunerSettings:
    """How the tuner searches. Frozen and self-validating; the defaults suit most searches.

    Attributes:
        n_init: space-filling Sobol trials before the models take over (default ``max(6, k + 2)`` for ``k`` params:
            enough to fit the GPs' lengthscales, no more).
        n_candidates: raw samples scored per ask, before the gradient steps.
        sobol_fraction: share of raw samples drawn over the whole box rather than around the front.
        best_loss_share: share of asks that improve only the best loss (the front's expensive
            end, where the final model is) rather than the whole loss-vs-cost front.
        target: the scale you will train at, e.g. ``{"n_params": 7e9, "tokens": 1.4e11}`` (any
            scaling axes; the others stay where the search is): a ``target_share`` of the asks then
            choose the runs that teach the most about the best config there, per unit of cost
            (see :mod:`carbs_like.target`). None: no target, the search improves the front.
        target_cost: instead of ``target``, the compute you will spend on the final run: the
            target is then the scale, grown evenly along every scaling axis from the largest run,
            that the cost model predicts to cost this much.
        target_share: share of the asks that serve the target, when there is one.
        target_design: how a target ask values a run: ``"law"``, by the expected reduction of
            the regret of the scaling law's proposal at the target (its response surface, see
            :mod:`carbs_like.scaling.design`; the GP's ``"gp"`` while the runs are too few for
            the surface), or ``"gp"``, by the loss GP's variance reduction at the near-optimal
            configs and the regression's at the target scale (:mod:`carbs_like.target`).
        max_suggestion_cost: never suggest a config whose predicted cost exceeds this.
        rerun_probability: chance that an ask re-runs a front point, when the loss GP's fitted
            noise says a rerun is informative (never on a deterministic objective).
        max_repeats: at most this many runs of one config.
        refit_growth: refit GP hyperparameters once the observations have grown by this factor
            since the last fit (always below ``refit_always_below`` observations); in between the
            GPs are only conditioned on the new data.
        refit_always_below: refit on every new observation while there are fewer than this.
        max_fit_points: fit hyperparameters on at most this many observations.
        fit_maxiter: L-BFGS-B iterations per hyperparameter fit.
        threads: torch and BLAS threads of a fit or an ask (restored afterwards); None leaves
            them as they are. One, as Optuna's GP sampler does: more threads thrash when trainers
            share the cores, and a GP of a few hundred points gains little from them.
    """

    n_init: int | None = None
    n_candidates: int = 2000
    sobol_fraction: float = 0.2
    best_loss_share: float = 0.5
    target: dict[str, float] | None = None
    target_cost: float | None = None
    target_share: float = 0.5
    target_design: str = "law"
    max_suggestion_cost: float | None = None
    rerun_probability: float = 0.05
    max_repeats: int = 2
    refit_growth: float = 1.1
    refit_always_below: int = 64
    max_fit_points: int = 256
    fit_maxiter: int = 75
    threads: int | None = 1

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, want: str) -> None:
            if not ok:
                raise ValueError(f"TunerSettings.{name}={getattr(self, name)!r}: must be {want}")

        check("n_init", self.n_init is None or (isinstance(self.n_init, int) and self.n_init >= 1), "an int >= 1 or None")
        check("n_candidates", isinstance(self.n_candidates, int) and self.n_candidates >= 10, "an int >= 10")
        check("sobol_fraction", 0.0 <= self.sobol_fraction <= 1.0, "in [0, 1]")
        check(
            "max_suggestion_cost",
            self.max_suggestion_cost is None or (self.max_suggestion_cost > 0 and math.isfinite(self.max_suggestion_cost)),
            "a positive finite number or None",
        )
        check("best_loss_share", 0.0 <= self.best_loss_share <= 1.0, "in [0, 1]")
        check("target", self.target is None or (isinstance(self.target, dict) and bool(self.target) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for k, v in self.target.items())), "None or a non-empty dict of scaling axis -> positive number")
        check("target_cost", self.target_cost is None or (isinstance(self.target_cost, (int, float))
              and math.isfinite(self.target_cost) and self.target_cost > 0), "None or a positive finite number")
        if self.target is not None and self.target_cost is not None:
            raise ValueError("TunerSettings: give target or target_cost, not both")
        check("target_share", 0.0 <= self.target_share <= 1.0, "in [0, 1]")
        check("target_design", self.target_design in ("law", "gp"), '"law" or "gp"')
        check("rerun_probability", 0.0 <= self.rerun_probability <= 1.0, "in [0, 1]")
        check("max_repeats", isinstance(self.max_repeats, int) and self.max_repeats >= 1, "an int >= 1")
        check("refit_growth", self.refit_growth >= 1.0, ">= 1")
        check(
            "refit_always_below",
            isinstance(self.refit_always_below, int) and self.refit_always_below >= 0,
            "an int >= 0",
        )
        check("max_fit_points", isinstance(self.max_fit_points, int) and self.max_fit_points >= 8, "an int >= 8")
        check("threads", self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
              "an int >= 1 or None")
        check("fit_maxiter", isinstance(self.fit_maxiter, int) and self.fit_maxiter >= 1, "an int >= 1")
