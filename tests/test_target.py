"""Target-aware search and pool mode: the API, the journal, and the design criterion."""

from __future__ import annotations

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
