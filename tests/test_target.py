"""Target-aware search and pool mode: the API, the journal, and the design criterion."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from carbs_like import Tuner, TunerSettings
from carbs_like.target import regression_variance_reduction
from carbs_like.testing import LLMLandscape

QUICK = dict(n_candidates=200, fit_maxiter=30)


def _run(tuner: Tuner, landscape: LLMLandscape, n: int, *, pool=None) -> list:
    rng = np.random.default_rng(0)
    trials = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            trial = tuner.ask(candidates=pool)
            loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
            tuner.tell(trial, loss=loss, cost=cost, failed=failed)
            trials.append(trial)
    return trials


def test_a_target_on_an_unknown_axis_fails_naming_the_scaling_axes():
    space = LLMLandscape().space()
    with pytest.raises(ValueError, match=r"not scaling axes.*n_params"):
        Tuner(space, target={"n_layers": 48})
    with pytest.raises(ValueError, match="target or target_cost, not both"):
        TunerSettings(target={"n_params": 1e9}, target_cost=1e20)


def test_target_asks_are_made_and_journaled_with_the_target(tmp_path):
    landscape = LLMLandscape()
    tuner = Tuner(landscape.space(), seed=0, settings=TunerSettings(**QUICK), path=tmp_path / "j",
                  target={"n_params": 1e9, "tokens": 2e10})
    trials = _run(tuner, landscape, 14)
    kinds = [t.metadata.get("acquisition") for t in trials]
    assert "target" in kinds and ("log_ehvi" in kinds or "log_ei" in kinds)
    tuner.close()
    again = Tuner.resume(tmp_path / "j")
    assert again.settings.target == {"n_params": 1e9, "tokens": 2e10}
    assert len(again.observed) == 14
    again.close()


def test_pool_mode_only_asks_fresh_configs_of_the_pool():
    landscape = LLMLandscape()
    space = landscape.space()
    pool = space.to_configs(space.sobol(16, seed=3))
    tuner = Tuner(space, seed=1, settings=TunerSettings(**QUICK), target_cost=1e18)
    asked = [t.config for t in _run(tuner, landscape, 16, pool=pool)]
    keys = space.keys(space.to_search(asked))
    assert set(keys) == set(space.keys(space.to_search(pool)))  # every pool config once, nothing else
    with pytest.raises(RuntimeError, match="pool|repeats an observed or pending config"):
        tuner.ask(candidates=pool)


def test_one_more_optimum_near_the_target_scale_teaches_the_extrapolation_most():
    S_obs = torch.tensor([[0.0, 0.0], [0.5, 0.2], [0.2, 0.6], [1.0, 1.0], [0.7, 0.4], [0.3, 0.9]], dtype=torch.float64)
    target = torch.tensor([3.0, 3.0], dtype=torch.float64)
    candidates = torch.tensor([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]], dtype=torch.float64)
    vr = regression_variance_reduction(S_obs, candidates, target)
    assert vr[0] < vr[1] < vr[2]


def test_the_cli_target_is_checked_against_the_scaling_axes():
    from carbs_like.cli.experiment import UsageError
    from carbs_like.cli.main import parse_target

    space = LLMLandscape().space()
    assert parse_target(space, "n_params=7e9,tokens=1.4e11") == {"n_params": 7e9, "tokens": 1.4e11}
    with pytest.raises(UsageError, match="NAME=VALUE"):
        parse_target(space, "n_params:7e9")
    with pytest.raises(UsageError, match="not scaling axes"):
        parse_target(space, "lr=1e-3")


def _bowl_tuner() -> Tuner:
    """A tuner told runs of a known bowl: lr* = 1e-3 (N / 1e8)^-0.5, the loss 10% higher per
    squared e-fold of lr away from it, at three sizes and two token counts each (10 N and 40 N)
    and seven lrs at each."""
    from carbs_like import LogParam, SearchSpace

    space = SearchSpace([LogParam("n_params", min=1e7, max=1e10), LogParam("tokens", min=1e8, max=1e12),
                         LogParam("lr", min=1e-5, max=1e-1)], scaling=["n_params", "tokens"])
    tuner = Tuner(space, seed=0)
    for n, r in itertools.product((3e7, 1e8, 3e8), (10, 40)):
        best = 1e-3 * (n / 1e8) ** -0.5
        for f in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8):
            loss = (2.0 + 30.0 / n**0.2 + 30.0 / (r * n) ** 0.2) * (1.0 + 0.1 * np.log(f) ** 2)
            tuner.add({"n_params": n, "tokens": r * n, "lr": best * f}, loss=loss, cost=6 * n * r * n)
    return tuner


def test_the_law_values_runs_beside_the_optimum_and_near_the_target_scale_most():
    from carbs_like.scaling.design import target_gain

    tuner = _bowl_tuner()
    space, data = tuner.space, tuner.observed_data()
    target = space.scaling_coordinates({"n_params": 3e9, "tokens": 6e10})
    gain = target_gain(space, data, torch.empty(0, space.dim, dtype=torch.float64), target)
    assert gain is not None

    def at(n: float, f: float) -> float:
        X = space.to_search([{"n_params": n, "tokens": 20 * n, "lr": 1e-3 * (n / 1e8) ** -0.5 * f}])
        return float(gain(X)[0])

    # At the optimum a run barely moves the fitted optimum; a step to either side does.
    assert at(3e8, 1.0) < 0.2 * min(at(3e8, 1 / 3), at(3e8, 3.0))
    # The same run teaches the extrapolation more at the largest size than at the smallest.
    assert at(3e8, 3.0) > 2 * at(3e7, 3.0)
    # Pending runs are information already: with four such runs pending, one more is worth less.
    X = space.to_search([{"n_params": 3e8, "tokens": 6e9, "lr": 1e-3 * 3**-0.5 * 3}])
    again = target_gain(space, data, X.repeat(4, 1), target)
    assert float(again(X)[0]) < 0.6 * float(gain(X)[0])


def test_the_law_design_waits_for_enough_runs_and_target_asks_say_which_criterion_chose():
    from carbs_like.scaling.design import target_gain

    tuner = _bowl_tuner()
    few = tuner.observed_data()
    few = type(few)(X=few.X[:5], loss=few.loss[:5], cost=few.cost[:5], failed=few.failed[:5])
    target = tuner.space.scaling_coordinates({"n_params": 3e9, "tokens": 6e10})
    assert target_gain(tuner.space, few, torch.empty(0, tuner.space.dim, dtype=torch.float64), target) is None
    tuner = Tuner(tuner.space, seed=0, settings=TunerSettings(**QUICK, target_share=1.0),
                  target={"n_params": 3e9, "tokens": 6e10})
    for t in _bowl_tuner().observed:
        tuner.add(t.config, loss=t.loss, cost=t.cost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = tuner.ask()
    assert trial.metadata["acquisition"] == "target_law"
