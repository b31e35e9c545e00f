"""Adapters that give every method the same small ask/tell surface.

Each adapter is built by :func:`make_method` for one problem and seed, and offers

* ``ask() -> dict``: the next config to run (a plain dict of param values);
* ``tell(config, outcome)``: report the run ``ask`` returned last;
* ``add(config, outcome)``: import a run the method did not ask for (warm start, for latency).

The methods and what they optimise:

* ``carbs_like``: :class:`carbs_like.Tuner`, told loss and cost; the front is its own business.
* ``random``: uniform sampling over the peers' domain (log-uniform for log params).
* ``optuna_tpe`` / ``optuna_gp``: Optuna's ``TPESampler`` / ``GPSampler`` through ask/tell. On a
  problem with a cost they minimise (loss, log10 cost) jointly (multi-objective); otherwise the loss.
  Failed runs are told as ``TrialState.FAIL``.
* ``ax``: Ax's ``Client`` (its own API, not Ray's AxSearch), default generation strategy
  (Sobol, then BoTorch modular GP); multi-objective "-loss, -log_cost" where there is a cost.
  Failed runs are marked failed.

Optuna and Ax are imported lazily, only when their method is built. Peers are given log10(cost)
rather than cost: the same front, and friendlier to their models (carbs_like models log cost).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from .problems import Domain, Outcome, Problem

__all__ = ["METHODS", "MODEL_BASED", "Method", "make_method", "versions"]

METHODS = ("carbs_like", "random", "optuna_tpe", "optuna_gp", "ax")
MODEL_BASED = ("carbs_like", "optuna_tpe", "optuna_gp", "ax")


class Method(Protocol):
    name: str

    def ask(self) -> dict[str, Any]: ...

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None: ...

    def add(self, config: Mapping[str, Any], outcome: Outcome) -> None: ...


def versions() -> dict[str, str]:
    """Installed versions of carbs_like and every peer (``"missing"`` where not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("carbs-like", "torch", "botorch", "gpytorch", "optuna", "ax-platform"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    import carbs_like

    out["carbs-like"] = carbs_like.__version__
    return out


def make_method(name: str, problem: Problem, *, seed: int) -> Method:
    """Build method ``name`` (one of :data:`METHODS`) for ``problem``, seeded by ``seed``."""
    if name == "carbs_like":
        return CarbsMethod(problem, seed=seed)
    if name == "random":
        return RandomMethod(problem.domain, seed=seed)
    if name in ("optuna_tpe", "optuna_gp"):
        return OptunaMethod(problem, sampler=name.split("_")[1], seed=seed)
    if name == "ax":
        return AxMethod(problem, seed=seed)
    raise ValueError(f"unknown method {name!r}; pick from {', '.join(METHODS)}")


class CarbsMethod:
    """carbs_like's Tuner, told loss and cost."""

    name = "carbs_like"

    def __init__(self, problem: Problem, *, seed: int) -> None:
        import json
        import os

        from carbs_like import Tuner, TunerSettings

        # CARBS_LIKE_SETTINGS='{"best_loss_share": 1.0}' compares settings without editing code.
        settings = TunerSettings(**json.loads(os.environ.get("CARBS_LIKE_SETTINGS", "{}")))
        self.tuner = Tuner(problem.space, seed=seed, settings=settings)
        self._trial = None

    def ask(self) -> dict[str, Any]:
        self._trial = self.tuner.ask()
        return dict(self._trial.config)

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        if self._trial is None:
            raise RuntimeError("tell() before ask()")
        self.tuner.tell(self._trial, loss=outcome.loss, cost=outcome.cost, failed=outcome.failed)
        self._trial = None

    def add(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        self.tuner.add(dict(config), loss=outcome.loss, cost=outcome.cost, failed=outcome.failed)


def sample_domain(domain: Domain, rng: np.random.Generator) -> dict[str, Any]:
    """One uniform draw from the domain (log-uniform on log dims)."""
    config: dict[str, Any] = {}
    for d in domain:
        if d.kind == "choice":
            config[d.name] = d.choices[int(rng.integers(len(d.choices)))]
            continue
        lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
        v = float(rng.uniform(lo, hi))
        v = math.exp(v) if d.log else v
        config[d.name] = int(min(max(round(v), d.low), d.high)) if d.kind == "int" else v
    return config


class RandomMethod:
    """Uniform random search over the domain."""

    name = "random"

    def __init__(self, domain: Domain, *, seed: int) -> None:
        self.domain = domain
        self.rng = np.random.default_rng([seed, 7])

    def ask(self) -> dict[str, Any]:
        return sample_domain(self.domain, self.rng)

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        pass

    def add(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        pass


def _objectives(problem: Problem, outcome: Outcome) -> list[float]:
    if problem.multi_objective:
        return [float(outcome.loss), math.log10(outcome.cost)]
    return [float(outcome.loss)]


class OptunaMethod:
    """Optuna's TPE or GP sampler through the ask/tell interface."""

    def __init__(self, problem: Problem, *, sampler: str, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name = f"optuna_{sampler}"
        self.problem = problem
        self._optuna = optuna
        if sampler == "tpe":
            s = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        elif sampler == "gp":
            s = optuna.samplers.GPSampler(seed=seed)
        else:
            raise ValueError(f"unknown Optuna sampler {sampler!r}; pick tpe or gp")
        n_obj = 2 if problem.multi_objective else 1
        self.study = optuna.create_study(sampler=s, directions=["minimize"] * n_obj)
        self.distributions = {d.name: _optuna_distribution(optuna, d) for d in problem.domain}
        self._trial = None

    def ask(self) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            self._trial = self.study.ask(self.distributions)
        return dict(self._trial.params)

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        if self._trial is None:
            raise RuntimeError("tell() before ask()")
        if outcome.failed:
            self.study.tell(self._trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(self._trial, _objectives(self.problem, outcome))
        self._trial = None

    def add(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        optuna = self._optuna
        state = optuna.trial.TrialState.FAIL if outcome.failed else optuna.trial.TrialState.COMPLETE
        values = None if outcome.failed else _objectives(self.problem, outcome)
        self.study.add_trial(
            optuna.trial.create_trial(params=dict(config), distributions=self.distributions, values=values, state=state)
        )


def _optuna_distribution(optuna, d):
    if d.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(d.choices))
    if d.kind == "int":
        return optuna.distributions.IntDistribution(int(d.low), int(d.high), log=d.log)
    return optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)


class AxMethod:
    """Ax's own Client API with its default generation strategy."""

    name = "ax"

    def __init__(self, problem: Problem, *, seed: int) -> None:
        from ax import ChoiceParameterConfig, Client, RangeParameterConfig

        for logger in ("ax", "ax.api", "ax.service", "ax.modelbridge", "ax.generation_strategy"):
            logging.getLogger(logger).setLevel(logging.WARNING)
        self.problem = problem
        params = []
        for d in problem.domain:
            if d.kind == "choice":
                params.append(ChoiceParameterConfig(name=d.name, values=list(d.choices), parameter_type="str", is_ordered=False))
            else:
                bounds = (int(d.low), int(d.high)) if d.kind == "int" else (float(d.low), float(d.high))
                params.append(
                    RangeParameterConfig(
                        name=d.name, bounds=bounds, parameter_type=d.kind, scaling="log" if d.log else "linear"
                    )
                )
        self.client = Client(random_seed=seed)
        self.client.configure_experiment(parameters=params, name="benchmark")
        self.client.configure_optimization(objective="-loss, -log_cost" if problem.multi_objective else "-loss")
        self.client.configure_generation_strategy(initialization_random_seed=seed)
        self._index: int | None = None

    def ask(self) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (self._index, params), = self.client.get_next_trials(max_trials=1).items()
        return dict(params)

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        if self._index is None:
            raise RuntimeError("tell() before ask()")
        self._complete(self._index, outcome)
        self._index = None

    def add(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index = self.client.attach_trial(parameters=dict(config))
        self._complete(index, outcome)

    def _complete(self, index: int, outcome: Outcome) -> None:
        if outcome.failed:
            self.client.mark_trial_failed(trial_index=index, failed_reason="diverged")
            return
        data = {"loss": float(outcome.loss)}
        if self.problem.multi_objective:
            data["log_cost"] = math.log10(outcome.cost)
        self.client.complete_trial(trial_index=index, raw_data=data)
