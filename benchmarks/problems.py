"""The benchmark problems, each with one search space that every method searches.

A problem is a carbs_like :class:`~carbs_like.SearchSpace` (what ``carbs_like`` searches) plus a
neutral :class:`Domain` derived from it (what the peers search: the same names, bounds and log
scaling; an unbounded carbs_like param gives the peers its nominal range), and an ``evaluate``
that returns an :class:`Outcome` (loss, cost, failed).

* :class:`LandscapeProblem`: a cost-aware LLM landscape of :mod:`carbs_like.testing`
  (loss and FLOPs cost; runs with too high a learning rate fail).
* :class:`FunctionProblem`: a BoTorch test function. Single-objective functions (Branin,
  Hartmann6) give carbs_like a constant cost of 1, so its front is one point and it searches for
  the best loss only. The bi-objective BraninCurrin gives Branin as the loss and Currin (positive,
  in [1.2, 13.8]) as the cost, which is exactly the loss-vs-cost front carbs_like searches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from carbs_like import ChoiceParam, LinearParam, LogParam, SearchSpace
from carbs_like.testing import LLMLandscape

__all__ = [
    "Dim",
    "Domain",
    "FunctionProblem",
    "LandscapeProblem",
    "Outcome",
    "Problem",
    "domain_of",
    "function_problem",
    "landscape_problem",
]


@dataclass(frozen=True)
class Outcome:
    """What one run reports: its loss (None if it failed) and its positive cost."""

    loss: float | None
    cost: float
    failed: bool


@dataclass(frozen=True)
class Dim:
    """One searched param as the peers see it.

    Attributes:
        name: the config key.
        kind: ``"float"``, ``"int"`` or ``"choice"``.
        low, high: bounds (param space) of a numeric param.
        log: search the numeric param on a log scale.
        choices: the values of a choice param.
    """

    name: str
    kind: Literal["float", "int", "choice"]
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()


Domain = tuple[Dim, ...]


def domain_of(space: SearchSpace) -> Domain:
    """The peers' view of a carbs_like search space: its nominal ranges, in param space."""
    dims = []
    for p in space.params:
        if isinstance(p, ChoiceParam):
            dims.append(Dim(p.name, "choice", choices=tuple(p.choices)))
            continue
        if not isinstance(p, (LogParam, LinearParam)):
            raise TypeError(f"{p.name}: benchmarks support Log/Linear/Choice params, not {type(p).__name__}")
        lo, hi = p.nominal
        log = isinstance(p, LogParam)
        low, high = (math.exp(lo), math.exp(hi)) if log else (lo, hi)
        low, high = (p.min if p.min is not None else low), (p.max if p.max is not None else high)
        if p.integer:
            dims.append(Dim(p.name, "int", low=math.ceil(low), high=math.floor(high), log=log))
        else:
            dims.append(Dim(p.name, "float", low=low, high=high, log=log))
    return tuple(dims)


@dataclass(frozen=True)
class LandscapeProblem:
    """A cost-aware LLM landscape (loss and FLOPs), with a 33x larger target size.

    Attributes:
        name: a short label for tables.
        landscape: the synthetic landscape.
        target: ``(n_params, tokens)`` of the larger model a recommendation is scored at.
    """

    name: str
    landscape: LLMLandscape
    target: tuple[float, float] = (1e9, 2e10)
    kind: Literal["landscape"] = "landscape"

    @property
    def space(self) -> SearchSpace:
        return self.landscape.space()

    @property
    def domain(self) -> Domain:
        return domain_of(self.space)

    @property
    def multi_objective(self) -> bool:
        return True

    def evaluate(self, config: Mapping[str, Any], *, rng: np.random.Generator) -> Outcome:
        loss, cost, failed = self.landscape.evaluate(config, rng=rng)
        return Outcome(loss=loss, cost=cost, failed=failed)

    def regret_at_target(self, config: Mapping[str, Any]) -> float:
        """Relative noiseless regret of ``config`` run at the target size (inf if it diverges).

        Only the non-scaling params of ``config`` are used; the scaling axes are set to the target.
        """
        n_params, tokens = self.target
        run = {**dict(config), "n_params": n_params, "tokens": tokens}
        loss = self.landscape.loss(run)
        if loss is None:
            return math.inf
        best = float(self.landscape.optimal_loss(n_params, tokens))
        return (loss - best) / best


@dataclass(frozen=True)
class FunctionProblem:
    """A BoTorch test function over its box.

    Attributes:
        name: ``"branin"``, ``"hartmann6"`` or ``"branin_currin"``.
        bounds: `d` (low, high) pairs.
        multi_objective: True for BraninCurrin (loss = Branin, cost = Currin).
        optimum: the best loss (single-objective) or the maximal hypervolume (bi-objective).
        ref_point: (loss, cost) reference point of the hypervolume (bi-objective only).
    """

    name: str
    bounds: tuple[tuple[float, float], ...]
    multi_objective: bool
    optimum: float
    ref_point: tuple[float, float] | None = None
    kind: Literal["function"] = "function"

    @property
    def space(self) -> SearchSpace:
        return SearchSpace([LinearParam(f"x{i}", min=lo, max=hi) for i, (lo, hi) in enumerate(self.bounds)])

    @property
    def domain(self) -> Domain:
        return domain_of(self.space)

    def _function(self):
        from botorch.test_functions import Branin, BraninCurrin, Hartmann

        return {"branin": Branin, "hartmann6": lambda: Hartmann(dim=6), "branin_currin": BraninCurrin}[self.name]()

    def values(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Noiseless values: `n` losses, or `n x 2` (loss, cost) for the bi-objective function."""
        import torch

        X = torch.tensor([[float(c[f"x{i}"]) for i in range(len(self.bounds))] for c in configs], dtype=torch.float64)
        return self._function().evaluate_true(X).numpy()

    def evaluate(self, config: Mapping[str, Any], *, rng: np.random.Generator) -> Outcome:
        value = self.values([config])[0]
        if self.multi_objective:
            return Outcome(loss=float(value[0]), cost=float(value[1]), failed=False)
        return Outcome(loss=float(value), cost=1.0, failed=False)


Problem = LandscapeProblem | FunctionProblem


def landscape_problem(which: str | int) -> LandscapeProblem:
    """``"default"`` (the published constants) or a seed of ``LLMLandscape.random``."""
    if which == "default":
        return LandscapeProblem("llm_default", LLMLandscape())
    seed = int(which)
    return LandscapeProblem(f"llm_random{seed}", LLMLandscape.random(seed))


def function_problem(name: str) -> FunctionProblem:
    """One of ``"branin"``, ``"hartmann6"``, ``"branin_currin"``."""
    if name == "branin":
        return FunctionProblem(name, ((-5.0, 10.0), (0.0, 15.0)), False, 0.397887)
    if name == "hartmann6":
        return FunctionProblem(name, ((0.0, 1.0),) * 6, False, -3.32237)
    if name == "branin_currin":
        return FunctionProblem(name, ((0.0, 1.0),) * 2, True, 59.36011874867746, ref_point=(18.0, 6.0))
    raise ValueError(f"unknown test function {name!r}; pick branin, hartmann6 or branin_currin")
